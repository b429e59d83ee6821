"""What the store raises, the same for every backend; services turn these into gRPC statuses."""

from __future__ import annotations


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached or written; callers answer UNAVAILABLE."""


class NoStoreError(LookupError):
    """The database reached holds no mtsg store (no schema), and the caller must not make one there."""


class EntryExistsError(LookupError):
    """An active registry entry with this identity exists already (ALREADY_EXISTS)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"entry {entry_id} exists already; revoke it first or import an update")
        self.entry_id = entry_id


class EntryNotFoundError(LookupError):
    """No registry entry has this id (NOT_FOUND)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no entry {entry_id}")
        self.entry_id = entry_id


class RequestIdReusedError(ValueError):
    """An idempotency key came back with a different request (INVALID_ARGUMENT)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request_id {request_id!r} was already used for a different request; use a new one")
        self.request_id = request_id


class NonceReusedError(ValueError):
    """A login came with a nonce its device already used: a replay (nothing of it was stored)."""

    def __init__(self, device_id: str) -> None:
        super().__init__("this nonce was already used by this device; every login needs a fresh nonce")
        self.device_id = device_id


class BundleAppliedMeanwhileError(Exception):
    """This very bundle (same publisher, version and contents) was applied by another gateway while this one
    imported it: nothing is left to do, and nothing went wrong (every replica follows the same feed)."""

    def __init__(self, publisher: str, bundle_version: int) -> None:
        super().__init__(f"bundle version {bundle_version} of {publisher} was applied by another gateway meanwhile")
