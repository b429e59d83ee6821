"""Standard Webhooks signing and verification, including the spec's published example."""

from __future__ import annotations

import base64

import pytest

from gateway.commands.webhook_signing import (
    WebhookKeyError,
    WebhookSigner,
    WebhookVerificationError,
    generate_hmac_secret,
    generate_key_pair,
    parse_hmac_secret,
    parse_private_key,
    parse_public_key,
    verify_webhook,
)

NOW = 1_800_000_000
BODY = b'{"type":"command.freeze_account","data":{"command_id":"cmd_1"}}'


def test_hmac_signature_matches_the_specs_example() -> None:
    secret = parse_hmac_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = WebhookSigner(hmac_secrets=(secret,)).headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _pair() -> tuple[WebhookSigner, list[bytes], list]:  # type: ignore[type-arg]
    private, public = generate_key_pair()
    secret = parse_hmac_secret(generate_hmac_secret())
    signer = WebhookSigner((secret,), (parse_private_key(private),))
    return signer, [secret], [parse_public_key(public)]


def test_both_kinds_sign_and_either_verifies_alone() -> None:
    signer, secrets, keys = _pair()
    headers = signer.headers("cmd_1", NOW, BODY)
    assert [part.split(",")[0] for part in headers["webhook-signature"].split()] == ["v1", "v1a"]
    assert verify_webhook(headers, BODY, hmac_secrets=secrets, public_keys=[], now=NOW) == "cmd_1"
    assert verify_webhook(headers, BODY, hmac_secrets=[], public_keys=keys, now=NOW) == "cmd_1"


def test_during_rotation_a_receiver_with_only_the_new_secret_verifies() -> None:
    old, new = parse_hmac_secret(generate_hmac_secret()), parse_hmac_secret(generate_hmac_secret())
    headers = WebhookSigner(hmac_secrets=(old, new)).headers("cmd_1", NOW, BODY)
    assert len(headers["webhook-signature"].split()) == 2
    assert verify_webhook(headers, BODY, hmac_secrets=[new], public_keys=[], now=NOW) == "cmd_1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, b: ({**h, "webhook-id": "cmd_2"}, b), "no signature matches"),
        (lambda h, b: (h, b + b" "), "no signature matches"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW - 301)}, b), "more than 300s"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW + 301)}, b), "more than 300s"),
        (lambda h, b: ({**h, "webhook-timestamp": "12.5"}, b), "whole seconds"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
        (lambda h, b: ({**h, "webhook-signature": "v1,not*base64 v2,abc"}, b), "no signature matches"),
        (lambda h, b: ({**h, "webhook-signature": "v1a," + base64.b64encode(b"x" * 64).decode()}, b), "no signature"),
    ],
    ids=["other-id", "tampered-body", "stale", "future", "fractional", "unsigned", "garbage", "forged-v1a"],
)
def test_tampering_staleness_and_garbage_are_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    signer, secrets, keys = _pair()
    headers, body = change(signer.headers("cmd_1", NOW, BODY), BODY)
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(headers, body, hmac_secrets=secrets, public_keys=keys, now=NOW)


def test_a_signature_by_an_unknown_key_is_refused() -> None:
    signer, _, _ = _pair()
    _, secrets, keys = _pair()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(signer.headers("cmd_1", NOW, BODY), BODY, hmac_secrets=secrets, public_keys=keys, now=NOW)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_hmac_secret, "secret", "must start with 'whsec_'"),
        (parse_hmac_secret, "whsec_%%%", "not valid base64"),
        (parse_hmac_secret, "whsec_" + base64.b64encode(b"short").decode(), "at least 24 bytes"),
        (parse_private_key, "whsk_" + base64.b64encode(b"x" * 31).decode(), "32 bytes"),
        (parse_public_key, "whsec_" + base64.b64encode(b"x" * 32).decode(), "must start with 'whpk_'"),
        (parse_public_key, "whpk_" + base64.b64encode(b"x" * 33).decode(), "32 bytes"),
    ],
)
def test_malformed_keys_are_refused_with_a_reason(parse, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WebhookKeyError, match=message):
        parse(text)


def test_key_files_name_the_bad_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "secrets"
    path.write_text(f"# current\n{generate_hmac_secret()}\n\nwhsec_tooshort\n")
    with pytest.raises(WebhookKeyError, match=r"secrets, key 2: "):
        WebhookSigner.from_files(path, None)
    path.write_text("# nothing here\n")
    with pytest.raises(WebhookKeyError, match="holds no key"):
        WebhookSigner.from_files(path, None)
