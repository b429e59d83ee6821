"""Phone-hash key rotation end to end: hash under one key, rotate, hash under the next, find both."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from gateway.client import MtsgClient
from gateway.privacy.phone_hash import PhoneHashKeyError, read_keys
from gateway.server.start import start_gateway
from tests.helpers import gateway_config, phone_change
from tests.integration.conftest import run_mtsg

FIRST, SECOND, THIRD = "+821055501111", "+821055502222", "+821055503333"


def _mtsg(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    key_file = {"MTSG_PRIVACY_PHONE_HASH_KEY_FILE": str(tmp_path / "phone-hash.key")}
    return run_mtsg(*arguments, "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=key_file)


async def _report(tmp_path: Path, customer: str, previous: str, new: str) -> None:
    gateway = await start_gateway(gateway_config(tmp_path))
    try:
        async with MtsgClient(gateway.target) as client:
            answer = await client.report_phone_number_changes(
                [phone_change(customer, previous_phone_number=previous, new_phone_number=new)]
            )
            assert answer.accepted_count == 1
    finally:
        await gateway.stop(grace=1.0)


async def test_a_rotated_key_hashes_new_numbers_and_old_hashes_are_still_found(tmp_path: Path) -> None:
    await _report(tmp_path, "cust-before", FIRST, SECOND)
    first_key = read_keys(tmp_path / "phone-hash.key").current.key_id

    rotated = _mtsg(tmp_path, "privacy", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    ring = read_keys(tmp_path / "phone-hash.key")
    assert len(ring.all) == 2 and ring.all[1].key_id == first_key and ring.current.key_id != first_key
    assert f"new current key {ring.current.key_id}" in rotated.stdout and "Restart every gateway" in rotated.stderr
    assert stat.S_IMODE((tmp_path / "phone-hash.key").stat().st_mode) == 0o600

    await _report(tmp_path, "cust-after", SECOND, THIRD)

    found = _mtsg(tmp_path, "privacy", "find-number", "+82 10-5550-2222")
    assert found.returncode == 0, found.stderr
    rows = [line.split() for line in found.stdout.splitlines()[1:]]
    assert [(row[1], row[2], row[-1]) for row in rows] == [
        ("cust-before", "new", first_key),
        ("cust-after", "previous", ring.current.key_id),
    ]
    nobody = _mtsg(tmp_path, "privacy", "find-number", "+821099999999")
    assert nobody.returncode == 0 and "no stored phone-number change involves this number" in nobody.stdout

    keys = _mtsg(tmp_path, "privacy", "keys")
    assert keys.returncode == 0, keys.stderr
    assert f"{ring.current.key_id}  current" in keys.stdout and f"{first_key}  previous" in keys.stdout

    # An operator drops the old key too early: its hashes can no longer be matched, and `keys` says so.
    (tmp_path / "phone-hash.key").write_text(ring.current.key.hex() + "\n")
    lost = _mtsg(tmp_path, "privacy", "keys")
    assert lost.returncode == 1 and f"{first_key}  NOT IN THE FILE" in lost.stdout


def test_bad_input_to_the_privacy_commands(tmp_path: Path) -> None:
    missing = _mtsg(tmp_path, "privacy", "rotate-key")
    assert missing.returncode == 2 and "no phone-hash key file" in missing.stderr
    (tmp_path / "phone-hash.key").write_text("# nothing but a comment\n")
    empty = _mtsg(tmp_path, "privacy", "rotate-key")
    assert empty.returncode == 1 and "holds no key" in empty.stderr
    (tmp_path / "phone-hash.key").write_text("not-hex\n")
    garbage = _mtsg(tmp_path, "privacy", "rotate-key")
    assert garbage.returncode == 1 and "one hex key per line" in garbage.stderr
    assert (tmp_path / "phone-hash.key").read_text() == "not-hex\n"  # a refused rotation changes nothing
    number = _mtsg(tmp_path, "privacy", "find-number", "12345")
    assert number.returncode == 2 and "E.164" in number.stderr


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text("00" * 16 + "\n")
    with pytest.raises(PhoneHashKeyError, match="at least 32 bytes"):
        read_keys(tmp_path / "short.key")
