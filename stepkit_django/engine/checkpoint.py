"""Signed checkpoint tokens.

A token is ``<payload>.<timestamp>.<signature>``: three URL-safe Base64 parts
(the payload is zlib-compressed when that is smaller, and then starts with a
dot), signed by :class:`django.core.signing.TimestampSigner` with an HMAC over
``SECRET_KEY`` and the project's own salt. Keys listed in
``SECRET_KEY_FALLBACKS`` still verify, so keys can be rotated.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from typing import Any

from django.core import signing

from .context import to_json_ready
from .errors import InvalidCheckpoint
from .options import current as options

__all__ = ["FORMAT_VERSION", "decode_checkpoint", "encode_checkpoint"]

FORMAT_VERSION = 1
_SEP = "."
_TOKEN_RE = re.compile(r"^\.?[A-Za-z0-9_\-]+\.[A-Za-z0-9]+\.[A-Za-z0-9_\-]+$")
_REQUIRED = ("pipeline", "version", "step", "position", "steps", "context", "outer_contexts")


class _CompactJSON:
    """Serializer for ``sign_object``: compact UTF-8 JSON."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode())


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=options().checkpoint_salt, sep=_SEP)


def encode_checkpoint(
    *,
    pipeline: str | None,
    version: int,
    step: str,
    position: Sequence[int],
    steps: Sequence[str],
    contexts: Sequence[dict[str, Any]],
) -> str:
    """Sign a checkpoint. ``contexts`` holds the enclosing contexts, innermost last.

    Raises :class:`~stepkit_django.exceptions.CheckpointError` naming the key path
    when a context value cannot be stored.
    """
    *outer, inner = contexts
    payload = {
        "format": FORMAT_VERSION,
        "pipeline": pipeline,
        "version": version,
        "step": step,
        "position": list(position),
        "steps": list(steps),
        "context": to_json_ready(inner),
        "outer_contexts": [to_json_ready(c) for c in outer],
    }
    return _signer().sign_object(payload, serializer=_CompactJSON, compress=True)


_SETTING = object()


def decode_checkpoint(token: object, *, max_age: Any = _SETTING) -> dict[str, Any]:
    """Verify ``token`` and return its contents.

    The dict has ``format``, ``pipeline``, ``version``, ``step`` (display path),
    ``position`` (indices of the step in the pipeline tree), ``steps`` (top-level
    step names), ``context`` and ``outer_contexts`` (contexts of the enclosing
    pipelines when the step is nested). Raises :class:`InvalidCheckpoint`.

    ``max_age`` (seconds) defaults to ``STEPKIT["CHECKPOINT_MAX_AGE"]``; the server
    passes ``None`` for tokens it stored itself.
    """
    if not isinstance(token, str):
        raise InvalidCheckpoint(f"Checkpoint must be a string, got {type(token).__name__}")
    if not token.strip():
        raise InvalidCheckpoint("Checkpoint is empty")
    if not _TOKEN_RE.match(token):
        raise InvalidCheckpoint(
            "Checkpoint is not decodable: expected a stepkit_django token "
            "(three URL-safe Base64 parts separated by dots)"
        )
    if max_age is _SETTING:
        max_age = options().checkpoint_max_age
    try:
        payload = _signer().unsign_object(token, serializer=_CompactJSON, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise InvalidCheckpoint(f"Checkpoint has expired: {exc} (STEPKIT['CHECKPOINT_MAX_AGE'] = {max_age})") from exc
    except signing.BadSignature as exc:
        raise InvalidCheckpoint(
            "Checkpoint signature does not match: the token was changed, "
            "or it was signed with another SECRET_KEY or salt"
        ) from exc
    except (ValueError, zlib.error, UnicodeDecodeError) as exc:
        raise InvalidCheckpoint(f"Checkpoint is not decodable: {exc}") from exc
    if not isinstance(payload, dict) or "format" not in payload:
        raise InvalidCheckpoint("Checkpoint is not decodable: the payload has no format version")
    if payload["format"] != FORMAT_VERSION:
        raise InvalidCheckpoint(
            f"Checkpoint format version {payload['format']!r} is not supported "
            f"(this version of stepkit_django reads version {FORMAT_VERSION})"
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise InvalidCheckpoint(f"Checkpoint is not decodable: missing {', '.join(missing)}")
    return payload
