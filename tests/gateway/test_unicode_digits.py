"""Digits that are not ASCII ("¹", "٣") pass str.isdigit() but not int(): every number we parse refuses them cleanly.

Found by the fuzz test: a page_token of "¹" made ListPolicyVersions answer INTERNAL."""

from __future__ import annotations

import time

import pytest

from gateway.commands.retry import parse_retry_after
from gateway.config import ConfigError, load_config
from gateway.policy.admin import PolicyVersionNotFoundError, parse_version


@pytest.mark.parametrize("text", ["\u00b9", "\u0663", "1\u00b2"])
def test_policy_versions_refuse_non_ascii_digits(text: str) -> None:
    with pytest.raises(PolicyVersionNotFoundError):
        parse_version(text)


def test_retry_after_with_non_ascii_digits_is_unreadable_not_a_crash() -> None:
    assert parse_retry_after("\u00b2", time.time()) is None
    assert parse_retry_after("2", time.time()) == 2.0


def test_a_listen_port_in_non_ascii_digits_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        load_config(environ={"MTSG_SERVER_LISTEN": "127.0.0.1:\u0665\u0660"})  # "50" in Arabic-Indic digits
