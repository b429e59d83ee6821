"""The data files shipped in the signals package, read the way the gateway reads them."""

from __future__ import annotations

from pathlib import Path

from signals.policy_document import read_policy
from signals.remote_control import parse_catalog

DATA = Path(__file__).parents[2] / "signals" / "data"
DEFAULT_POLICY_TEXT = (DATA / "default_policy.toml").read_text(encoding="utf-8")
DEFAULT_POLICY = read_policy(DEFAULT_POLICY_TEXT, "1")
CATALOG = parse_catalog((DATA / "remote_control_apps.toml").read_text(encoding="utf-8"))
