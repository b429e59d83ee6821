"""What of a URL may be shown: never its credentials, query or fragment."""

from __future__ import annotations

import pytest

from gateway.urls import without_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@feeds.example:8443/kisa.bundle?token=abc#x", "https://feeds.example:8443/kisa.bundle"),
        ("http://127.0.0.1/feed.bundle", "http://127.0.0.1/feed.bundle"),
        ("https://token@feeds.example/b", "https://feeds.example/b"),
        ("https://[::1]:8443/b?key=1", "https://[::1]:8443/b"),
        ("http://[::1/b", "(unparsable URL)"),
        ("https://feeds.example:99999/b?token=x", "(unparsable URL)"),
    ],
)
def test_a_url_is_shown_without_what_may_be_secret(url: str, shown: str) -> None:
    assert without_secrets(url) == shown
