"""URLs as they may be shown: in logs, metrics, the audit trail, status answers and ``config show``.

Threat-intelligence feeds are often fetched with a token in the query or credentials in the
URL, and every place that names a feed would otherwise copy that secret to people and systems
that must never hold it.  The full URL stays where it is needed: the configuration and the
request itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def without_secrets(url: str) -> str:
    """``url`` without user, password, query or fragment: scheme://host[:port]/path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL we can take apart: show nothing of it rather than all of it
        return "(unparsable URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"
