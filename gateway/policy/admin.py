"""Putting a policy in force: the one path shared by PolicyService, `mtsg policy` and the policy file.

Every path validates the whole document before anything is stored, so a bad
policy never becomes a version and the running one stays in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store import Store
from gateway.store.records import StoredPolicy
from signals.policy import Policy
from signals.policy_document import Problem, read_policy
from signals.policy_review import review_policy

# Longest document accepted: a few hundred scenarios fit in well under this.
MAX_DOCUMENT_BYTES = 512 * 1024


class PolicyVersionNotFoundError(LookupError):
    """No stored policy has this version (NOT_FOUND)."""

    def __init__(self, version: str) -> None:
        super().__init__(f"no policy version {version!r}; `mtsg policy versions` lists them")
        self.version = version


def parse_version(text: str) -> int:
    """A version as the API and CLI spell it ("7"); PolicyVersionNotFoundError for anything else."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise PolicyVersionNotFoundError(text)
    return int(text)


def policy_of(stored: StoredPolicy) -> Policy:
    """The brain's Policy for a stored version (PolicyError if this build no longer accepts it)."""
    return read_policy(stored.document, str(stored.version))


@dataclass(frozen=True, slots=True)
class AppliedPolicy:
    """What applying a document did: the version in force, whether it is new, and the review's warnings."""

    stored: StoredPolicy
    # False when the version in force already had this very document, so no version was made.
    created: bool
    warnings: list[Problem]


async def apply_policy(
    store: Store, document: str, *, actor: str, comment: str, at: float, request_id: str = ""
) -> AppliedPolicy:
    """Validate ``document`` (PolicyError lists every problem) and store it as the next version.

    A document identical to the version in force makes no new version; the result says so.
    """
    warnings = review_policy(read_policy(document, ""))
    stored = await store.policies.apply_unless_in_force(
        document, actor=actor, comment=comment, at=at, request_id=request_id
    )
    if stored is not None:
        return AppliedPolicy(stored, True, warnings)
    in_force = await store.policies.get()
    assert in_force is not None  # it has this very document
    return AppliedPolicy(in_force, False, warnings)


async def apply_policy_unless_in_force(
    store: Store, document: str, *, actor: str, comment: str, at: float
) -> StoredPolicy | None:
    """``apply_policy``, or None when the version in force already has this document (another replica stored it)."""
    read_policy(document, "")
    return await store.policies.apply_unless_in_force(document, actor=actor, comment=comment, at=at)


async def rollback_policy(
    store: Store, version: str, *, actor: str, comment: str, at: float, request_id: str = ""
) -> StoredPolicy:
    """Bring ``version``'s document back as a new version; it is validated again, as this build reads it."""
    earlier = await store.policies.get(parse_version(version))
    if earlier is None:
        raise PolicyVersionNotFoundError(version)
    read_policy(earlier.document, "")
    return await store.policies.apply(
        earlier.document,
        actor=actor,
        comment=comment or f"rollback to version {earlier.version}",
        at=at,
        request_id=request_id,
        restored_version=earlier.version,
    )
