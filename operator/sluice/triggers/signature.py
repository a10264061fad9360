"""Authenticating an event: an HMAC-SHA256 signature, or a bearer token.

The sender signs the raw body with a shared key and sends ``sha256=<hex>``
in a header (GitHub's convention); the server recomputes it and compares in
constant time, so neither the key nor how much of a guess was right leaks
through timing. Senders that cannot sign may send the key itself as a
bearer token instead (weaker: whoever sees one request can send others).

Keys are the Secret's bytes without surrounding whitespace (a Secret made
with ``echo`` ends in a newline that the sender's copy usually lacks), and
must be at least MIN_KEY_BYTES long.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="
MIN_KEY_BYTES = 16
_WHITESPACE = b" \t\r\n"


def normalised_key(raw: bytes) -> bytes:
    return raw.strip(_WHITESPACE)


def key_problem(key: bytes) -> str | None:
    """Why a key is not fit to authenticate with, or None."""
    if len(key) < MIN_KEY_BYTES:
        return f"the key is {len(key)} bytes: use at least {MIN_KEY_BYTES} (e.g. openssl rand -hex 32)"
    return None


def _raw(text: str) -> bytes:
    """A header value as the bytes it arrived as (any byte, never an error)."""
    return text.encode("utf-8", "surrogateescape")


def sign(key: bytes, body: bytes) -> str:
    """The header value a sender puts on ``body``."""
    return PREFIX + hmac.new(normalised_key(key), body, hashlib.sha256).hexdigest()


def signature_problem(key: bytes, body: bytes, header: str | None, header_name: str) -> str | None:
    """Why the request's signature is refused, or None when it is valid."""
    if not header:
        return f"the request is not signed: send {header_name}: sha256=<HMAC-SHA256 of the body, hex>"
    given = _raw(header).strip(_WHITESPACE).lower()
    if not given.startswith(PREFIX.encode()):
        return f"{header_name} must be sha256=<hex>"
    if not hmac.compare_digest(sign(key, body).encode(), given):
        return f"{header_name} does not match the body: it was signed with another key, or the body changed"
    return None


def token_problem(key: bytes, authorization: str | None) -> str | None:
    """Why a bearer-token request is refused, or None when its token is the key."""
    given = _raw(authorization or "")
    if not given.startswith(b"Bearer "):
        return "the request has no Authorization: Bearer <token> header"
    if not hmac.compare_digest(given[len(b"Bearer ") :].strip(_WHITESPACE), normalised_key(key)):
        return "the bearer token is not this trigger's"
    return None
