"""Keeps the gateway's policy in step with the versions in the store.

At start the store gets the shipped playbook as version 1 if it has no policy
yet, and a configured policy file is applied when it differs from the version in
force.  Then every ``interval`` the refresher reads the head version (one indexed
MAX) and swaps in the new Policy with a single assignment; a CheckLogin already
running keeps the policy it started with.  A version this build cannot read is
logged and skipped: the gateway keeps deciding with the last good policy.
SIGHUP re-reads the policy file (``reload_file``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import structlog

from gateway.policy.admin import apply_policy_unless_in_force, policy_of
from gateway.policy.knowledge import shipped_policy_document
from gateway.registry.refresh import KnowledgeHolder
from gateway.runtime.periodic import cancel, every
from gateway.runtime.wakeup import Wakeup
from gateway.store import Store
from gateway.store.errors import StoreUnavailableError
from gateway.store.policies import document_sha256
from signals.policy import Policy
from signals.policy_document import PolicyError
from signals.policy_review import review_policy

log = structlog.get_logger(__name__)
SHIPPED_ACTOR = "mtsg:shipped-default"


class PolicyFileError(RuntimeError):
    """The configured policy file cannot be read or is not a valid policy."""


class PolicyRefresher:
    def __init__(
        self,
        store: Store,
        holder: KnowledgeHolder,
        interval: float,
        policy_file: Path | None,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._holder = holder
        self._interval = interval
        self._policy_file = policy_file
        self._clock = clock
        self._seen_version = 0  # the version in force here
        self._refused_version = 0  # the newest version this build could not read, logged once
        self._refreshing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """At start: make sure a version is in force, apply the policy file, then load it (errors stop the start)."""
        await self._store.policies.ensure_initial(shipped_policy_document(), actor=SHIPPED_ACTOR, at=self._clock())
        if self._policy_file is not None:
            await self.reload_file()
        stored = await self._store.policies.get()
        assert stored is not None  # ensure_initial made one
        try:
            policy = policy_of(stored)
        except PolicyError as error:
            raise PolicyFileError(
                f"policy version {stored.version} in the store is not valid for this build: {error};"
                " apply a corrected policy or roll back with `mtsg policy`"
            ) from error
        if stored.version != self._seen_version:  # reload_file may have swapped it in already
            self._swap_to(policy, stored.version)

    @property
    def version(self) -> int:
        """The policy version in force in this gateway."""
        return self._seen_version

    def _swap_to(self, policy: Policy, version: int) -> None:
        self._holder.current = dataclasses.replace(self._holder.current, policy=policy)
        self._seen_version = version
        log.info("policy in force", version=version, scenarios=len(self._holder.current.policy.scenarios))

    async def refresh(self) -> bool:
        """Swap in the head version when it moved; True when the policy in force changed.

        One round at a time: a round woken by another replica's NOTIFY and one run after an
        ApplyPolicy could otherwise overlap, and the one that read the older head swap it in last.
        """
        async with self._refreshing:
            head = await self._store.policies.head_version()
            if head in (self._seen_version, self._refused_version):
                return False
            stored = await self._store.policies.get(head)
            if stored is None:
                return False
            try:
                policy = policy_of(stored)
            except PolicyError as error:
                log.error(
                    "policy version not valid for this build; keeping the current one", version=head, error=str(error)
                )
                # Not logged again every round.  The version in force stays what it is: its metric is how
                # MtsgReplicasDisagreeOnPolicy sees a replica left behind.
                self._refused_version = head
                return False
            self._swap_to(policy, head)
            return True

    async def reload_file(self) -> bool:
        """Apply the policy file when it differs from the version in force; True when a new version was made."""
        if self._policy_file is None:
            return False
        try:
            document = self._policy_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyFileError(f"cannot read policy file {self._policy_file}: {error}") from error
        # The usual case, an unchanged file, without validating it or opening a write transaction;
        # the store checks again in that transaction, for replicas applying the same file at once.
        current = await self._store.policies.get()
        if current is not None and current.document_sha256 == document_sha256(document):
            return False
        try:
            stored = await apply_policy_unless_in_force(
                self._store,
                document,
                actor=f"file:{self._policy_file}",
                comment="applied from the configured policy file",
                at=self._clock(),
            )
        except PolicyError as error:
            raise PolicyFileError(f"policy file {self._policy_file} is not valid: {error}") from error
        await self.refresh()
        if stored is None:  # another replica or worker stored this file first
            return False
        log.info("policy file applied", version=stored.version, file=str(self._policy_file))
        for warning in review_policy(policy_of(stored)):
            log.warning("policy warning", version=stored.version, location=warning.location, warning=warning.message)
        return True

    def start(self, wakeup: Wakeup | None = None) -> None:
        """Poll every interval; ``wakeup`` (another replica's NOTIFY) brings a round at once."""
        self._task = asyncio.create_task(
            every(self._interval, self.refresh, "policy refresh", wakeup, expected=(StoreUnavailableError,)),
            name="policy-refresh",
        )

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
