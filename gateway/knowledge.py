"""Loading what the brain knows (catalogues, policy) from files into plain data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from signals.evaluate import Knowledge
from signals.policy import DEFAULT_POLICY
from signals.remote_control import CatalogError, RemoteControlCatalog, parse_catalog


class KnowledgeError(RuntimeError):
    """A data file the brain needs is missing or invalid."""


def load_remote_control_catalog(path: str) -> RemoteControlCatalog:
    """The configured catalogue file, or the one shipped in the signals package when ``path`` is empty."""
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = (resources.files("signals") / "data" / "remote_control_apps.toml").read_text(encoding="utf-8")
        return parse_catalog(text)
    except (OSError, UnicodeDecodeError, CatalogError) as error:
        raise KnowledgeError(f"remote-control app list {path or '(built in)'}: {error}") from error


def load_knowledge(remote_control_apps_file: str) -> Knowledge:
    return Knowledge(policy=DEFAULT_POLICY, remote_control=load_remote_control_catalog(remote_control_apps_file))
