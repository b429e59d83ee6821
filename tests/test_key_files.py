"""The key generators write a set of key files all or none, and say clearly why they cannot.

Before, a --dir that was a file, or one that could not be made, ended in a traceback; a failure
midway left half a set that the next run refused as existing; and a NAME with '/' put the keys
outside --dir.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.cli.support import write_key_files
from tests.helpers import run_mtsg


def _mtsg(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_mtsg(*arguments, cwd=tmp_path)


def test_a_failure_midway_removes_what_was_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("a file where the second key's directory would be")
    first, second = tmp_path / "keys" / "a.key", tmp_path / "taken" / "inner" / "b.pub"

    assert write_key_files("keys generate", [(first, b"secret", 0o600), (second, b"public", 0o644)]) == 1

    assert not first.exists()  # no half set left behind
    assert "mtsg keys generate: cannot write" in capsys.readouterr().err
    assert write_key_files("keys generate", [(first, b"secret", 0o600)]) == 0
    assert first.read_bytes() == b"secret" and first.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("arguments", "command"),
    [(["keys", "generate", "pub"], "keys generate"), (["commands", "keys", "generate"], "commands keys generate")],
)
def test_a_dir_that_is_a_file_is_refused_with_a_message(tmp_path: Path, arguments: list[str], command: str) -> None:
    (tmp_path / "feed.csv").write_text("key_type,value\n")
    result = _mtsg(tmp_path, *arguments, "--dir", "feed.csv")
    assert result.returncode == 2
    assert result.stderr.strip() == f"mtsg {command}: feed.csv is not a directory"


@pytest.mark.parametrize("name", ["../outside", "", ".hidden", "a/b"])
def test_a_key_name_must_be_a_plain_file_name(tmp_path: Path, name: str) -> None:
    result = _mtsg(tmp_path, "keys", "generate", name, "--dir", "keys")
    assert result.returncode == 2 and "argument name: must" in result.stderr
    assert list(tmp_path.iterdir()) == []
