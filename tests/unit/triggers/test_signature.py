"""Signatures: only the holder of the key can make a body start a run."""

from sluice.triggers.signature import key_problem, sign, signature_problem

KEY = b"a-key-of-at-least-16-bytes"
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


def test_any_bytes_in_the_header_are_refused_not_an_error() -> None:
    assert "does not match" in (signature_problem(KEY, b"{}", "sha256=\udcff\udcfe", HEADER) or "")


def test_the_keys_surrounding_whitespace_does_not_matter_and_short_keys_are_refused() -> None:
    body = b"{}"
    assert signature_problem(KEY + b"\n", body, sign(KEY, body), HEADER) is None
    assert key_problem(b"0123456789abcde") is not None and key_problem(b"0123456789abcdef") is None
