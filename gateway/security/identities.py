"""Identities and their roles, from a TOML file of token hashes and client-certificate names.

Tokens are never stored: the file holds the SHA-256 of each, and a presented token is
hashed and compared against every entry in constant time, so neither the file nor the
timing of a refusal gives a token away.  A token is long and random (``mtsg auth token``
makes 256-bit ones), so an unsalted hash is enough: there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROLES = ("app", "telco", "secops", "core")
TOKEN_PREFIX = "mtsg_"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CERTIFICATE_KEYS = ("common_name", "subject", "san")
MAX_NAME_CHARACTERS = 200


class IdentitiesError(ValueError):
    """The identities file is missing or wrong; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    roles: frozenset[str]
    # "token", "certificate" or "insecure": how the caller proved who it is.
    proof: str

    def describe(self) -> str:
        return f"{self.name} ({self.proof})"


@dataclass(frozen=True, slots=True)
class CertificateRule:
    """A client certificate names this identity when the field equals the value."""

    field: str
    value: str
    identity: Identity


@dataclass(frozen=True, slots=True)
class IdentityBook:
    token_digests: tuple[tuple[bytes, Identity], ...]
    certificates: tuple[CertificateRule, ...]

    def by_token(self, token: str) -> Identity | None:
        digest = token_digest(token)
        found = None
        for known, identity in self.token_digests:  # no early exit: every refusal takes the same time
            if hmac.compare_digest(known, digest):
                found = identity
        return found

    def by_certificate(self, auth_context: Mapping[str, Sequence[bytes]]) -> Identity | None:
        """The identity a verified client certificate names (grpc's auth context), if any rule matches."""
        presented = {
            "common_name": auth_context.get("x509_common_name", ()),
            "subject": auth_context.get("x509_subject", ()),
            "san": auth_context.get("x509_subject_alternative_name", ()),
        }
        for rule in self.certificates:
            if any(value.decode("utf-8", "replace") == rule.value for value in presented[rule.field]):
                return rule.identity
        return None


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _roles(where: str, entry: Mapping[str, object]) -> frozenset[str]:
    roles = entry.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(role, str) for role in roles):
        raise IdentitiesError(f'{where}: roles must be a non-empty list, e.g. roles = ["app"]')
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise IdentitiesError(f"{where}: unknown role {unknown[0]!r} (roles: {', '.join(ROLES)})")
    return frozenset(roles)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an identity, or None when it can.

    The name is what the audit trail, the logs and ``mtsg audit list`` show as the caller: one line of
    printable text, since a line break would forge a second line there and an escape sequence would act
    on the terminal of whoever lists the trail later.
    """
    if not name.strip():
        return "must not be empty"
    if not name.isprintable():
        return "must be one line of printable text (no line breaks, tabs or other control characters)"
    if len(name) > MAX_NAME_CHARACTERS:
        return f"must be at most {MAX_NAME_CHARACTERS} characters"
    return None


def _name(where: str, entry: Mapping[str, object], seen: set[str]) -> str:
    name = entry.get("name")
    if not isinstance(name, str):
        raise IdentitiesError(f"{where}: name must be a non-empty string (it is what the audit trail records)")
    problem = name_problem(name)
    if problem is not None:
        raise IdentitiesError(f"{where}: name {problem} (it is what the audit trail records)")
    if name in seen:
        raise IdentitiesError(f"{where}: the name {name!r} is used twice; each identity needs its own")
    seen.add(name)
    return name


def _token_entry(where: str, entry: Mapping[str, object], seen: set[str]) -> tuple[bytes, Identity]:
    unknown = sorted(set(entry) - {"name", "roles", "sha256"})
    if unknown:
        raise IdentitiesError(f"{where}: unknown key {unknown[0]!r} (a token has name, roles, sha256)")
    name = _name(where, entry, seen)
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise IdentitiesError(
            f"{where}: sha256 must be the token's SHA-256 as 64 lowercase hex digits (never the token itself)"
        )
    return bytes.fromhex(digest), Identity(name, _roles(where, entry), "token")


def _certificate_entry(where: str, entry: Mapping[str, object], seen: set[str]) -> CertificateRule:
    unknown = sorted(set(entry) - {"name", "roles", *_CERTIFICATE_KEYS})
    if unknown:
        raise IdentitiesError(
            f"{where}: unknown key {unknown[0]!r} (a certificate has name, roles and one of common_name, subject, san)"
        )
    name = _name(where, entry, seen)
    matchers = [(key, entry[key]) for key in _CERTIFICATE_KEYS if key in entry]
    if len(matchers) != 1 or not isinstance(matchers[0][1], str) or not matchers[0][1]:
        raise IdentitiesError(f"{where}: give exactly one of common_name, subject or san, as a non-empty string")
    field, value = matchers[0]
    return CertificateRule(field, str(value), Identity(name, _roles(where, entry), "certificate"))


def parse_identities(text: str, source: str = "identities") -> IdentityBook:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise IdentitiesError(f"{source} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"token", "certificate"})
    if unknown:
        raise IdentitiesError(f"{source}: unknown table {unknown[0]!r} (known: [[token]], [[certificate]])")
    seen: set[str] = set()
    tokens, certificates = [], []
    for index, entry in enumerate(document.get("token", [])):
        tokens.append(_token_entry(f"{source}: token #{index + 1}", entry, seen))
    for index, entry in enumerate(document.get("certificate", [])):
        certificates.append(_certificate_entry(f"{source}: certificate #{index + 1}", entry, seen))
    digests = [digest for digest, _ in tokens]
    if len(set(digests)) != len(digests):
        raise IdentitiesError(f"{source}: one token hash is listed twice; a token must name exactly one identity")
    if not tokens and not certificates:
        raise IdentitiesError(f"{source} names no identity: no caller could ever be admitted")
    return IdentityBook(tuple(tokens), tuple(certificates))


def load_identities(path: Path) -> IdentityBook:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise IdentitiesError(f"cannot read identities file {path}: {error}") from None
    return parse_identities(text, f"identities file {path}")


def token_stanza(name: str, roles: Sequence[str], token: str) -> str:
    """The [[token]] entry for an identities file: what `mtsg auth token` prints beside the token."""
    listed = ", ".join(f'"{role}"' for role in roles)
    digest = token_digest(token).hex()
    # A JSON string is a TOML basic string: a quote or a backslash in the name is escaped, not written raw.
    quoted = json.dumps(name, ensure_ascii=False)
    return f'[[token]]\nname = {quoted}\nroles = [{listed}]\nsha256 = "{digest}"\n'
