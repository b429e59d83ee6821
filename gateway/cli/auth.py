"""``mtsg auth``: make bearer tokens and check an identities file before a gateway reads it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.security.identities import (
    ROLES,
    IdentitiesError,
    load_identities,
    name_problem,
    new_token,
    token_stanza,
)


def _token(options: argparse.Namespace) -> int:
    """A new token: the secret goes to --out (0600) or stdout, the hash stanza for the identities file to stderr."""
    roles = list(dict.fromkeys(options.role))
    token = new_token()
    if options.out:
        try:
            descriptor = os.open(options.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            print(f"mtsg auth token: cannot create {options.out}: {error}", file=sys.stderr)
            return 1
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")
        # A TOML comment: operators append stderr to the identities file.
        print(f"# {options.name}: token written to {options.out}", file=sys.stderr)
    else:
        print(token)
    print("# add to the identities file (auth.identities_file); the token itself is not kept:", file=sys.stderr)
    print(token_stanza(options.name, roles, token), file=sys.stderr, end="")
    return 0


def _identity_name(text: str) -> str:
    """An argparse type for --name: refused here what the identities file would refuse when the gateway reads it."""
    name = text.strip()
    problem = name_problem(name)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return name


def _check(options: argparse.Namespace) -> int:
    try:
        book = load_identities(options.file)
    except IdentitiesError as error:
        print(f"mtsg auth check: {error}", file=sys.stderr)
        return 1
    for _, identity in book.token_digests:
        print(f"token        {identity.name}: {', '.join(sorted(identity.roles))}")
    for rule in book.certificates:
        roles = ", ".join(sorted(rule.identity.roles))
        print(f"certificate  {rule.identity.name} ({rule.field} = {rule.value}): {roles}")
    return 0


def add_auth_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    auth = commands.add_parser("auth", help="bearer tokens and the identities file")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True, metavar="SUBCOMMAND")
    token = auth_commands.add_parser("token", help="make a bearer token and its identities-file entry")
    token.add_argument(
        "--name", required=True, type=_identity_name, help="who holds it, as the audit trail will name them"
    )
    token.add_argument("--role", required=True, action="append", choices=ROLES, help="a role (repeat for several)")
    token.add_argument("--out", type=Path, metavar="FILE", help="write the token to FILE (mode 0600) instead of stdout")
    token.set_defaults(run=_token)
    check = auth_commands.add_parser("check", help="load an identities file and list who may do what")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_check)
