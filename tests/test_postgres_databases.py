"""The tests' own PostgreSQL databases: a missing server skips on a laptop and fails in CI."""

from __future__ import annotations

import pytest

from tests.postgres import unreachable


def test_an_unreachable_postgresql_fails_the_run_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: the PostgreSQL tests must run"):
        unreachable(OSError("connection refused"))
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        unreachable(OSError("connection refused"))
