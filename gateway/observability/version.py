"""The version of this build of mtsg: what an operator asks of a replica during a rolling upgrade.

Read from the installed package's metadata (pyproject.toml's ``version``), so there is one place
to change it.  Code run straight from a checkout, without ``pip install``, has no metadata.
"""

from __future__ import annotations

import platform
from importlib import metadata

NOT_INSTALLED = "unknown (not installed)"


def mtsg_version() -> str:
    try:
        return metadata.version("mtsg")
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def version_line() -> str:
    """``mtsg --version``: this build's version and the Python it runs on."""
    return f"mtsg {mtsg_version()} (Python {platform.python_version()})"
