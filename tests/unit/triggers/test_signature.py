"""Signatures: only the holder of the key can make a body start a run."""

from sluice.triggers.signature import sign, signature_problem

KEY = b"key"
HEADER = "X-Sluice-Signature-256"


def test_a_body_signed_with_the_key_passes_and_any_change_fails() -> None:
    body = b'{"id": 1}'
    assert signature_problem(KEY, body, sign(KEY, body), HEADER) is None
    assert signature_problem(KEY, body, sign(KEY, body).upper().replace("SHA256=", "sha256="), HEADER) is None
    assert "does not match" in (signature_problem(KEY, body + b" ", sign(KEY, body), HEADER) or "")
    assert "does not match" in (signature_problem(KEY, body, sign(b"other", body), HEADER) or "")


def test_a_missing_or_malformed_signature_says_what_to_send() -> None:
    assert "not signed" in (signature_problem(KEY, b"{}", None, HEADER) or "")
    assert "sha256=<hex>" in (signature_problem(KEY, b"{}", "md5=abc", HEADER) or "")
    assert "does not match" in (signature_problem(KEY, b"{}", "sha256=", HEADER) or "")
