"""The identities file: what it accepts, what it refuses and why, and the CLI that makes entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, load_config, require_transport_choice
from gateway.security.identities import (
    MAX_NAME_CHARACTERS,
    IdentitiesError,
    name_problem,
    new_token,
    parse_identities,
    token_stanza,
)
from tests.helpers import run_mtsg

DIGEST = "a" * 64


def test_a_token_is_found_by_its_hash_and_nothing_else() -> None:
    token = new_token()
    book = parse_identities(token_stanza("android-app", ["app", "telco"], token))
    found = book.by_token(token)
    assert found is not None and found.name == "android-app" and found.roles == {"app", "telco"}
    assert book.by_token(token + "x") is None
    assert book.by_token(token_stanza("x", ["app"], token)) is None
    assert token not in token_stanza("android-app", ["app"], token)  # only the hash is written down


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=MAX_NAME_CHARACTERS))
def test_every_name_the_file_accepts_survives_the_stanza_written_for_it(name: str) -> None:
    """`mtsg auth token` prints the entry operators paste into the file: a quote or a backslash in the
    name used to be written raw, and the pasted file then failed to load (with every other identity)."""
    token = new_token()
    if name_problem(name) is None:
        found = parse_identities(token_stanza(name, ["secops"], token)).by_token(token)
        assert found is not None and found.name == name
    else:  # refused, as the name or as TOML (a raw DEL): either way the file is never half-read
        with pytest.raises(IdentitiesError):
            parse_identities(token_stanza(name, ["secops"], token))


def test_a_certificate_rule_matches_one_field() -> None:
    book = parse_identities('[[certificate]]\nname = "core"\nroles = ["core"]\nsan = "core.bank.example"\n')
    assert book.by_certificate({"x509_subject_alternative_name": [b"other", b"core.bank.example"]}) is not None
    assert book.by_certificate({"x509_common_name": [b"core.bank.example"]}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no identity"),
        ("[[token]]\nname = 'a'\nroles = ['app']\nsha256 = 'abc'\n", "64 lowercase hex"),
        (f"[[token]]\nname = 'a'\nroles = ['admin']\nsha256 = '{DIGEST}'\n", "unknown role 'admin'"),
        (f"[[token]]\nname = 'a'\nroles = []\nsha256 = '{DIGEST}'\n", "non-empty list"),
        (f"[[token]]\nroles = ['app']\nsha256 = '{DIGEST}'\n", "name must be"),
        (f"[[token]]\nname = 'a'\nroles = ['app']\nsha256 = '{DIGEST}'\ntoken = 'x'\n", "unknown key 'token'"),
        (
            f"[[token]]\nname = 'a'\nroles = ['app']\nsha256 = '{DIGEST}'\n"
            f"[[token]]\nname = 'b'\nroles = ['app']\nsha256 = '{DIGEST}'\n",
            "listed twice",
        ),
        (
            f"[[token]]\nname = 'a'\nroles = ['app']\nsha256 = '{DIGEST}'\n"
            "[[certificate]]\nname = 'a'\nroles = ['core']\ncommon_name = 'c'\n",
            "used twice",
        ),
        ("[[certificate]]\nname = 'c'\nroles = ['core']\n", "exactly one of common_name"),
        ("[[certificate]]\nname = 'c'\nroles = ['core']\ncommon_name = 'c'\nsan = 'd'\n", "exactly one"),
        ("[[user]]\nname = 'c'\n", "unknown table 'user'"),
        ("[[token]\n", "not valid TOML"),
        # What the audit trail shows as the caller: one line, nothing a terminal would act on.
        (f"[[token]]\nname = \"mallory\\nsecops\"\nroles = ['app']\nsha256 = '{DIGEST}'\n", "one line"),
        (f"[[token]]\nname = \"\\u001b[2Jx\"\nroles = ['app']\nsha256 = '{DIGEST}'\n", "no line breaks, tabs or other"),
        (f"[[token]]\nname = ' '\nroles = ['app']\nsha256 = '{DIGEST}'\n", "name must not be empty"),
        (
            f"[[certificate]]\nname = '{'c' * (MAX_NAME_CHARACTERS + 1)}'\nroles = ['core']\ncommon_name = 'c'\n",
            f"at most {MAX_NAME_CHARACTERS} characters",
        ),
    ],
)
def test_a_wrong_identities_file_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(IdentitiesError, match=message):
        parse_identities(text)


def test_serving_needs_identities_or_the_explicit_insecure_choice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no identities"):
        require_transport_choice(load_config(environ={}).config)
    require_transport_choice(load_config(environ={"MTSG_AUTH_INSECURE": "yes"}).config)
    with pytest.raises(ConfigError, match="expected true or false"):
        load_config(environ={"MTSG_AUTH_INSECURE": "maybe"})
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config(environ={"MTSG_AUTH_INSECURE": "true", "MTSG_AUTH_IDENTITIES_FILE": "ids.toml"})
    with pytest.raises(ConfigError, match="must be set together"):
        load_config(environ={"MTSG_SERVER_TLS_CERT_FILE": "cert.pem"})
    with pytest.raises(ConfigError, match="needs TLS"):
        load_config(environ={"MTSG_SERVER_TLS_CLIENT_CA_FILE": "ca.pem"})
    config = tmp_path / "mtsg.toml"
    config.write_text("[auth]\ninsecure = 'true'\n")
    with pytest.raises(ConfigError, match="expected bool"):  # a file has real types and must use them
        load_config(config, environ={})


def test_serve_without_a_choice_says_what_to_do(tmp_path: Path) -> None:
    result = run_mtsg(
        "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), environment={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 2
    assert "auth.identities_file" in result.stderr and "--insecure" in result.stderr


def test_serve_refuses_a_broken_identities_file(tmp_path: Path) -> None:
    identities = tmp_path / "identities.toml"
    identities.write_text("[[token]]\nname = 'a'\nroles = ['app']\nsha256 = 'not-a-hash'\n")
    result = run_mtsg(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path),
        environment={"PATH": "/usr/bin:/bin", "MTSG_AUTH_IDENTITIES_FILE": str(identities)},
    )
    assert result.returncode == 1 and "token #1: sha256 must be" in result.stderr


def test_auth_token_writes_the_secret_once_and_prints_its_entry(tmp_path: Path) -> None:
    out = tmp_path / "app.token"
    made = run_mtsg("auth", "token", "--name", "android-app", "--role", "app", "--out", str(out))
    assert made.returncode == 0, made.stderr
    token = out.read_text().strip()
    assert out.stat().st_mode & 0o777 == 0o600 and token not in made.stderr + made.stdout
    identities = tmp_path / "identities.toml"
    identities.write_text(made.stderr.split("not kept:\n", 1)[1])
    book = parse_identities(identities.read_text())
    assert book.by_token(token) is not None
    checked = run_mtsg("auth", "check", str(identities))
    assert checked.returncode == 0 and "token        android-app: app" in checked.stdout
    again = run_mtsg("auth", "token", "--name", "x", "--role", "app", "--out", str(out))
    assert again.returncode == 1 and out.read_text().strip() == token  # never overwrites a token
    wrong = run_mtsg("auth", "token", "--name", "x", "--role", "root")
    assert wrong.returncode == 2 and "invalid choice: 'root'" in wrong.stderr


def test_auth_token_writes_an_entry_that_loads_whatever_the_name_holds(tmp_path: Path) -> None:
    """A quote in the name was written raw: the pasted entry made the whole identities file invalid TOML."""
    name = 'branch "Gangnam" \\ ops'
    made = run_mtsg("auth", "token", "--name", name, "--role", "secops")
    assert made.returncode == 0, made.stderr
    found = parse_identities(made.stderr.split("not kept:\n", 1)[1]).by_token(made.stdout.strip())
    assert found is not None and found.name == name
    forged = run_mtsg("auth", "token", "--name", "app\nsecops", "--role", "app")
    assert forged.returncode == 2 and "argument --name: must be one line of printable text" in forged.stderr
    assert "mtsg_" not in forged.stdout  # no token made for a name the file would refuse
