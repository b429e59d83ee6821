"""BlocklistService: the security team's handle on the malicious-app registry over gRPC.

Every write is audited with the caller as actor and then applied to this
gateway's matcher at once (``on_change``); other gateways see it at their next
poll.  Until authentication lands, the actor is the peer address, marked as such.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import structlog

from blocklists.bundle import BundleError, StaleBundleError, encode_entry, header_line
from blocklists.entry import EXPIRED_PROBLEM, MAX_TEXT_LENGTH, KeyType, expired_by
from blocklists.formats import FeedFormatError
from gateway.errors import abort_with, failure, invalid_argument, invalid_field, refuse_if_any, unavailable
from gateway.generated.mtsg.v1 import blocklist_service_pb2, blocklist_service_pb2_grpc
from gateway.generated.mtsg.v1.error_reason_pb2 import (
    ERROR_REASON_ENTRY_EXISTS,
    ERROR_REASON_ENTRY_NOT_FOUND,
    ERROR_REASON_EXPORT_TOO_LARGE,
    ERROR_REASON_INVALID_BUNDLE,
    ERROR_REASON_INVALID_ENTRY,
    ERROR_REASON_REQUEST_ID_REUSED,
    ERROR_REASON_STALE_BUNDLE,
    ERROR_REASON_TRUSTED_KEYS,
)
from gateway.registry.importing import import_bundle
from gateway.registry.messages import (
    CATEGORY_NUMBER,
    CATEGORY_OF,
    KEY_TYPE_NUMBER,
    KEY_TYPE_OF,
    entry_id_from_token,
    entry_message,
    indicator_from_message,
    page_token,
)
from gateway.registry.trusted_keys import TrustedKeyError, require_trusted_keys
from gateway.services.callers import caller_actor
from gateway.store import Store, StoreUnavailableError
from gateway.store.errors import EntryExistsError, EntryNotFoundError, RequestIdReusedError
from gateway.store.records import EntryQuery
from gateway.urls import without_secrets
from gateway.violations import FieldViolation, InvalidRequestError, Violations, control_characters, request_id_or_none

log = structlog.get_logger(__name__)
MAX_PAGE_SIZE = 1000
MAX_REASON_LENGTH = 1000
# Entry ids are "bl_" and 24 hex digits (blocklists.entry); the bound only keeps out what no id can be.
MAX_ENTRY_ID_LENGTH = 128


def _fingerprint(request: object) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()  # type: ignore[attr-defined]


def _request_id_problems(request_id: str) -> list[FieldViolation]:
    violations = Violations()
    request_id_or_none("request_id", request_id, violations)
    return violations.found


class BlocklistService(blocklist_service_pb2_grpc.BlocklistServiceServicer):
    def __init__(
        self,
        store: Store,
        trusted_keys_dir: Path,
        on_change: Callable[[], Awaitable[object]],
        clock: Callable[[], float],
        max_export_bytes: int,
    ) -> None:
        self._store = store
        self._trusted_keys_dir = trusted_keys_dir
        self._on_change = on_change
        self._clock = clock
        self._max_export_bytes = max_export_bytes

    async def _applied(self) -> None:
        try:
            await self._on_change()
        except Exception:  # the write is committed; the refresher's poll will catch up
            log.exception("applying the change to the matcher failed; the next poll retries")

    async def AddEntry(
        self, request: blocklist_service_pb2.AddEntryRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.AddEntryResponse:
        request_id = _request_id_problems(request.request_id)
        try:
            indicator = indicator_from_message(request.entry)
        except InvalidRequestError as error:
            error = InvalidRequestError([*request_id, *error.violations], error.omitted)
            await abort_with(context, invalid_argument(error, ERROR_REASON_INVALID_ENTRY))
        if request_id:
            await abort_with(context, invalid_argument(InvalidRequestError(request_id)))
        now = self._clock()
        if expired_by(indicator, now):
            await abort_with(context, invalid_field("entry.valid_until", EXPIRED_PROBLEM, ERROR_REASON_INVALID_ENTRY))
        try:
            entry = await self._store.blocklist.add_entry(
                indicator, caller_actor(context), now, request.request_id, _fingerprint(request)
            )
        except EntryExistsError as error:
            await abort_with(context, failure(grpc.StatusCode.ALREADY_EXISTS, str(error), ERROR_REASON_ENTRY_EXISTS))
        except RequestIdReusedError as error:
            await abort_with(context, invalid_field("request_id", str(error), ERROR_REASON_REQUEST_ID_REUSED))
        except StoreUnavailableError:
            await abort_with(context, unavailable("the registry is unavailable; retry with the same request_id"))
        await self._applied()
        log.info("blocklist entry added", entry_id=entry.entry_id, category=entry.indicator.category.value)
        return blocklist_service_pb2.AddEntryResponse(entry=entry_message(entry))

    async def RevokeEntry(
        self, request: blocklist_service_pb2.RevokeEntryRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.RevokeEntryResponse:
        violations = Violations()
        request_id_or_none("request_id", request.request_id, violations)
        violations.text("entry_id", request.entry_id, max_length=MAX_ENTRY_ID_LENGTH, required=True)
        if not request.reason.strip():
            violations.add("reason", "is required: say why, for the audit trail")
        elif len(request.reason) > MAX_REASON_LENGTH:
            violations.add("reason", f"must be at most {MAX_REASON_LENGTH} characters")
        elif problem := control_characters(request.reason):
            violations.add("reason", problem)
        await refuse_if_any(context, violations)
        try:
            entry = await self._store.blocklist.revoke_entry(
                request.entry_id,
                request.reason.strip(),
                caller_actor(context),
                self._clock(),
                request.request_id,
                _fingerprint(request),
            )
        except EntryNotFoundError as error:
            await abort_with(context, failure(grpc.StatusCode.NOT_FOUND, str(error), ERROR_REASON_ENTRY_NOT_FOUND))
        except RequestIdReusedError as error:
            await abort_with(context, invalid_field("request_id", str(error), ERROR_REASON_REQUEST_ID_REUSED))
        except StoreUnavailableError:
            await abort_with(context, unavailable("the registry is unavailable; retry with the same request_id"))
        await self._applied()
        log.info("blocklist entry revoked", entry_id=entry.entry_id)
        return blocklist_service_pb2.RevokeEntryResponse(entry=entry_message(entry))

    async def GetEntry(
        self, request: blocklist_service_pb2.GetEntryRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.GetEntryResponse:
        violations = Violations()
        violations.text("entry_id", request.entry_id, max_length=MAX_ENTRY_ID_LENGTH, required=True)
        await refuse_if_any(context, violations)
        entry = await self._store.blocklist.get_entry(request.entry_id)
        if entry is None:
            await abort_with(
                context,
                failure(grpc.StatusCode.NOT_FOUND, f"no entry {request.entry_id}", ERROR_REASON_ENTRY_NOT_FOUND),
            )
        return blocklist_service_pb2.GetEntryResponse(entry=entry_message(entry))

    async def ListEntries(
        self, request: blocklist_service_pb2.ListEntriesRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.ListEntriesResponse:
        violations = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            violations.add("page_size", f"must be 0 to {MAX_PAGE_SIZE}")
        if request.category and request.category not in CATEGORY_OF:
            violations.add("category", "unknown category")
        if request.key_type and request.key_type not in KEY_TYPE_OF:
            violations.add("key_type", "unknown key type")
        # The filters reach the store's query: text it cannot hold (a NUL on PostgreSQL) is refused here.
        violations.text("source", request.source, max_length=MAX_TEXT_LENGTH)
        violations.text("text", request.text, max_length=MAX_TEXT_LENGTH)
        after = ""
        try:
            after = entry_id_from_token(request.page_token)
        except InvalidRequestError as error:
            for violation in error.violations:
                violations.add(violation.field, violation.description)
        await refuse_if_any(context, violations)
        query = EntryQuery(
            page_size=request.page_size or 100,
            after=after,
            category=CATEGORY_OF[request.category].value if request.category else "",
            source=request.source,
            key_type=KEY_TYPE_OF[request.key_type].value if request.key_type else "",
            text=request.text,
            include_revoked=request.include_revoked,
        )
        entries, last = await self._store.blocklist.list_entries(query)
        return blocklist_service_pb2.ListEntriesResponse(
            entries=[entry_message(entry) for entry in entries], next_page_token=page_token(last)
        )

    async def ImportBundle(
        self, request: blocklist_service_pb2.ImportBundleRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.ImportBundleResponse:
        violations = Violations()
        request_id_or_none("request_id", request.request_id, violations)
        if not request.bundle:
            violations.add("bundle", "is required: the bytes `mtsg blocklist sign` wrote")
        await refuse_if_any(context, violations)
        lines = request.bundle.splitlines(keepends=True)
        try:
            outcome = await import_bundle(
                self._store,
                lambda: iter(lines),
                require_trusted_keys(self._trusted_keys_dir),
                actor=caller_actor(context),
                now=self._clock(),
            )
        except StaleBundleError as error:
            await abort_with(
                context, failure(grpc.StatusCode.FAILED_PRECONDITION, str(error), ERROR_REASON_STALE_BUNDLE)
            )
        except (BundleError, FeedFormatError) as error:
            await abort_with(context, invalid_field("bundle", str(error), ERROR_REASON_INVALID_BUNDLE))
        except TrustedKeyError as error:
            log.error("trusted keys unusable", error=str(error))
            await abort_with(
                context, failure(grpc.StatusCode.FAILED_PRECONDITION, str(error), ERROR_REASON_TRUSTED_KEYS)
            )
        except StoreUnavailableError:
            await abort_with(context, unavailable("the registry is unavailable; send the bundle again"))
        summary = outcome.summary
        if summary is not None:
            await self._applied()
        log.info(
            "bundle imported" if summary else "bundle already applied",
            publisher=outcome.manifest.publisher,
            bundle_version=outcome.manifest.bundle_version,
            key_id=outcome.key_id,
        )
        return blocklist_service_pb2.ImportBundleResponse(
            bundle_version=outcome.manifest.bundle_version,
            added_count=summary.added if summary else 0,
            updated_count=summary.updated if summary else 0,
            revoked_count=summary.revoked if summary else 0,
        )

    async def ExportBundle(
        self, request: blocklist_service_pb2.ExportBundleRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.ExportBundleResponse:
        parts = [header_line(None, [])]
        size = len(parts[0])
        async for entry in self._store.blocklist.iter_entries(request.include_revoked):
            line = encode_entry(entry.indicator)
            size += len(line)
            if size > self._max_export_bytes:
                await abort_with(
                    context,
                    failure(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "the registry is larger than one gRPC message; use `mtsg blocklist export` on the host",
                        ERROR_REASON_EXPORT_TOO_LARGE,
                    ),
                )
            parts.append(line)
        return blocklist_service_pb2.ExportBundleResponse(bundle=b"".join(parts))

    async def GetStatus(
        self, request: blocklist_service_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> blocklist_service_pb2.GetStatusResponse:
        status = await self._store.blocklist.status(self._clock())
        response = blocklist_service_pb2.GetStatusResponse(
            version=str(status.version),
            active_count=status.active_count,
            by_category=[
                blocklist_service_pb2.CategoryCount(category=CATEGORY_NUMBER[name], count=count)
                for name, count in status.by_category
            ],
            by_source=[blocklist_service_pb2.SourceCount(source=name, count=count) for name, count in status.by_source],
            by_key_type=[
                blocklist_service_pb2.KeyTypeCount(key_type=KEY_TYPE_NUMBER[KeyType(name)], count=count)
                for name, count in status.by_key_type
            ],
        )
        if status.last_import_at is not None:
            response.last_import_at.FromNanoseconds(round(status.last_import_at * 1e9))
        for feed in await self._store.blocklist.feed_statuses():
            state = response.feeds.add(
                url=without_secrets(feed.url), last_error=feed.last_error, bundle_version=feed.bundle_version or 0
            )
            state.last_attempt_at.FromNanoseconds(round(feed.last_attempt_at * 1e9))
            if feed.last_success_at is not None:
                state.last_success_at.FromNanoseconds(round(feed.last_success_at * 1e9))
        return response
