"""HMAC-SHA256 request signatures, as GitHub and most webhook senders make them.

The sender signs the raw body with a shared key and sends ``sha256=<hex>``
in a header; the server recomputes it and compares in constant time, so
neither the key nor how much of a guess was right leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(key: bytes, body: bytes) -> str:
    """The header value a sender puts on ``body``."""
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def token_problem(key: bytes, authorization: str | None) -> str | None:
    """Why a bearer-token request is refused, or None when its token is the key."""
    if not authorization or not authorization.startswith("Bearer "):
        return "the request has no Authorization: Bearer <token> header"
    if not hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), key.strip()):
        return "the bearer token is not this trigger's"
    return None


def signature_problem(key: bytes, body: bytes, header: str | None, header_name: str) -> str | None:
    """Why the request's signature is refused, or None when it is valid."""
    if not header:
        return f"the request is not signed: send {header_name}: sha256=<HMAC-SHA256 of the body, hex>"
    if not header.startswith(PREFIX):
        return f"{header_name} must be sha256=<hex>"
    expected = sign(key, body)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        return f"{header_name} does not match the body: it was signed with another key, or the body changed"
    return None
