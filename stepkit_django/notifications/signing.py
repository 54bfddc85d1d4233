"""Webhook signatures: how :class:`~stepkit_django.notifications.WebhookNotifier` signs a request, and how a
receiver checks it with :func:`verify_signature`.

The header :data:`SIGNATURE_HEADER` reads ``t=<unix time>,v1=<hex digest>``: the digest is
HMAC-SHA256, keyed with the shared secret, of the timestamp, a dot and the request's body as
sent (``b"1767225600." + body``). A receiver recomputes it over the raw body it received,
compares in constant time, and refuses a timestamp outside its replay window, so that a
captured request cannot be sent again later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "SIGNATURE_TOLERANCE", "sign", "verify_signature"]

#: The request header that carries the signature.
SIGNATURE_HEADER = "X-Stepkit-Signature"
#: The default replay window of :func:`verify_signature`, in seconds.
SIGNATURE_TOLERANCE = 300


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent now (or at ``timestamp``, in Unix seconds)."""
    at = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={at},v1={_digest(secret, at, body)}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    *,
    tolerance: int = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (the :data:`SIGNATURE_HEADER` received) signs ``body`` (the raw bytes received)
    with ``secret``, at a time within ``tolerance`` seconds of ``now`` (default: the clock).

    False for a missing or malformed header, a wrong digest, or a timestamp outside the window.
    Several ``v1=`` entries are accepted (any one matching), for a receiver that rotates secrets.
    """
    if not header:
        return False
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1" and value:
            digests.append(value)
    if timestamp is None or not digests:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, digest) for digest in digests)
