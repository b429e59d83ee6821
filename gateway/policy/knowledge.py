"""Loading what the brain knows (catalogues, the shipped policy) from files into plain data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from signals.evaluate import Knowledge
from signals.policy import Policy
from signals.policy_document import PolicyError, read_policy
from signals.remote_control import CatalogError, RemoteControlCatalog, parse_catalog

# The version a gateway reports while its store holds no policy yet (only before the first start finishes).
SHIPPED_POLICY_VERSION = "shipped"


class KnowledgeError(RuntimeError):
    """A data file the brain needs is missing or invalid."""


def _shipped(name: str) -> str:
    return (resources.files("signals") / "data" / name).read_text(encoding="utf-8")


def load_remote_control_catalog(path: str) -> RemoteControlCatalog:
    """The configured catalogue file, or the one shipped in the signals package when ``path`` is empty."""
    try:
        text = Path(path).read_text(encoding="utf-8") if path else _shipped("remote_control_apps.toml")
        return parse_catalog(text)
    except (OSError, UnicodeDecodeError, CatalogError) as error:
        raise KnowledgeError(f"remote-control app list {path or '(built in)'}: {error}") from error


def shipped_policy_document() -> str:
    """The default playbook shipped with mtsg (signals/data/default_policy.toml)."""
    return _shipped("default_policy.toml")


def shipped_policy() -> Policy:
    try:
        return read_policy(shipped_policy_document(), SHIPPED_POLICY_VERSION)
    except PolicyError as error:  # a broken release, not an operator's mistake
        raise KnowledgeError(f"the shipped policy is invalid: {error}") from error


def load_knowledge(remote_control: RemoteControlCatalog | None = None) -> Knowledge:
    """What the brain knows before the store is read: the shipped policy, and ``remote_control`` or else
    the built-in remote-control app list."""
    return Knowledge(policy=shipped_policy(), remote_control=remote_control or load_remote_control_catalog(""))
