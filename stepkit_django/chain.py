"""The audit trail's hash chain: what each event's ``chain`` and ``data_digest`` hold, and the keys.

Each event of a run stores ``chain = HMAC-SHA256(key, previous chain || message)``, where the previous
chain is that of the run's event before it (none for the first: the empty string) and the run's
``audit_head`` holds the last one. The ``message`` (:func:`message`) is a canonical byte string of what a
purge keeps of the event: its run, checkpoint, pipeline, action, actor, time and note, the data a purge
keeps (:func:`stepkit_django.redaction.redacted_data`), and ``data_digest``, a keyed digest of the full
data (:func:`digest`; empty when a purge keeps all of it, the chain covering every value then). So the
values are protected before a purge (the digest no longer matches a
changed value), and the chain still verifies after one: the purge rewrites the data to its redacted form,
which redacts to itself, and leaves the digest as it is (a keyed one, so that it cannot confirm a guess of
an erased value without the key).

The key is derived from ``SECRET_KEY`` with the salt :data:`SALT`; a trail written before a rotation
verifies with the old secret in ``SECRET_KEY_FALLBACKS`` or, verify-only, in
``STEPKIT["AUDIT_VERIFY_SECRETS"]`` (:func:`verifying_keys`), which nothing but the chain's verification
reads: it never chains a new event and Django's other signers never see it. Who holds the key can
rewrite a chain: it proves that someone with access to the database but not to the key changed nothing
(docs/explanation/audit-chain.md says what it proves and what it does not).

The hot path links its events here too, from the head it wrote last, and its UPDATE moves the head only
if it is still that one; when another writer appended an event meanwhile, it locks the run's row, reads
the head and links them here again (:mod:`stepkit_django.execution.progress`). The key never reaches the
database: no statement carries it or anything derived from it but the links and digests themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.encoding import force_bytes

from .conf import settings as stepkit_settings
from .redaction import redacted_data

__all__ = [
    "SALT",
    "VERSION",
    "canonical",
    "derive",
    "digest",
    "link",
    "links",
    "message",
    "named_verifying_keys",
    "seal",
    "signing_key",
    "valid_verify_secrets",
    "verifying_keys",
]

#: The salt the chain's key is derived with from ``SECRET_KEY`` (and each of ``SECRET_KEY_FALLBACKS`` and of
#: ``STEPKIT["AUDIT_VERIFY_SECRETS"]``).
SALT = "stepkit_django.audit.chain"

#: The first element of every message: a later format can be told apart.
VERSION = "stepkit-audit-chain-1"

_DATA = b"stepkit-audit-data-1\x00"  # what a data digest starts with, so it is never a message's HMAC


@lru_cache(maxsize=16)
def derive(secret: str | bytes) -> bytes:
    """The chain's 32-byte key for one secret."""
    return hashlib.sha256(force_bytes(SALT) + force_bytes(secret)).digest()


def signing_key() -> bytes:
    """The key new events are chained with: derived from ``SECRET_KEY``."""
    return derive(settings.SECRET_KEY)


def valid_verify_secrets(value: Any) -> bool:
    """Whether ``value`` may be ``STEPKIT["AUDIT_VERIFY_SECRETS"]``: a list or tuple of non-empty strings or
    bytes (an empty secret would derive a key from the public salt alone: anyone could forge its links)."""
    return isinstance(value, list | tuple) and all(isinstance(secret, str | bytes) and secret for secret in value)


def named_verifying_keys() -> list[tuple[str, bytes]]:
    """The keys a chain may have been written with, each named by where its secret is set: ``"SECRET_KEY"``,
    then ``"SECRET_KEY_FALLBACKS[i]"``, then ``"AUDIT_VERIFY_SECRETS[i]"`` (``STEPKIT``'s, verify-only). A key
    given twice is listed once, under its first name. The names say where a key comes from, never what it
    is: they can be shown and logged.

    Raises ``ImproperlyConfigured`` when ``AUDIT_VERIFY_SECRETS`` is not a list of non-empty secrets (system
    check ``stepkit_django.E011``): a lone string would otherwise be read as one secret per character.
    """
    extra = stepkit_settings.AUDIT_VERIFY_SECRETS
    if not valid_verify_secrets(extra):
        raise ImproperlyConfigured(
            "STEPKIT['AUDIT_VERIFY_SECRETS'] must be a list or tuple of non-empty secrets (str or bytes)"
        )
    named = [("SECRET_KEY", signing_key())]
    seen = {named[0][1]}
    for source, secrets in (
        ("SECRET_KEY_FALLBACKS", getattr(settings, "SECRET_KEY_FALLBACKS", [])),
        ("AUDIT_VERIFY_SECRETS", extra),
    ):
        for index, secret in enumerate(secrets):
            key = derive(secret)
            if key not in seen:
                seen.add(key)
                named.append((f"{source}[{index}]", key))
    return named


def verifying_keys() -> list[bytes]:
    """The keys a chain may have been written with: ``SECRET_KEY``'s, then ``SECRET_KEY_FALLBACKS``', then
    ``STEPKIT["AUDIT_VERIFY_SECRETS"]``' (:func:`named_verifying_keys`, without the names)."""
    return [key for _, key in named_verifying_keys()]


def _pads(key: bytes) -> tuple[bytes, bytes]:
    """The key's inner and outer padded forms (64 bytes each, RFC 2104)."""
    block = key.ljust(64, b"\x00")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


_PLAIN = frozenset({str, bool, int, type(None)})


def _normal(value: Any) -> Any:
    """``value`` as JSON gives it back from the database: integral floats as ints (jsonb writes 1e16 as an
    integer), tuples as lists, other types as their JSON text (the encoder's), keys as strings."""
    kind = type(value)  # by exact type first: this runs for every event of the hot path
    if kind in _PLAIN:
        return value
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict or isinstance(value, Mapping):
        return {k if type(k) is str else str(k): _normal(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_normal(v) for v in value]
    if isinstance(value, str | bool | int | float | list | tuple) or value is None:  # subclasses
        return _normal(json.loads(json.dumps(value, allow_nan=False)))
    return _normal(json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)))


def _encoder() -> Callable[[Any], str]:
    """One canonical JSON encoder for every call (``json.dumps()`` with options builds a new one each time;
    the C encoder, built once, skips the Python layers around it)."""
    from json import encoder

    make: Any = getattr(encoder, "c_make_encoder", None)
    if make is not None:
        made = make(None, None, encoder.c_encode_basestring, None, ":", ",", True, False, False)  # type: ignore[attr-defined]
        return lambda value: "".join(made(value, 0))
    return json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


#: Canonical JSON of a normalised value (:func:`_normal`): sorted keys, no spaces, NaN refused.
_encode: Callable[[Any], str] = _encoder()


def canonical(value: Any) -> bytes:
    """``value`` as canonical JSON: sorted keys, no spaces, UTF-8, integral numbers as integers."""
    return _encode(_normal(value)).encode()


@lru_cache(maxsize=16)
def _states(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """The key's HMAC-SHA256 inner and outer hash states, computed once (RFC 2104)."""
    inner, outer = _pads(key)
    return hashlib.sha256(inner), hashlib.sha256(outer)


def _mac(key: bytes, text: bytes) -> bytes:
    """HMAC-SHA256 of ``text`` (the same as ``hmac.digest(key, text, "sha256")``, from the key's saved states)."""
    inner, outer = _states(key)
    first = inner.copy()
    first.update(text)
    second = outer.copy()
    second.update(first.digest())
    return second.digest()


def digest(key: bytes, data: Mapping[str, Any]) -> bytes:
    """The keyed digest of an event's full ``data`` (its ``data_digest``)."""
    return _mac(key, _DATA + canonical(data))


def _whole(action: str, data: Mapping[str, Any], kept: Mapping[str, Any]) -> bool:
    """Whether a purge keeps all of ``data`` (its kept projection is the data, marked purged); never when the
    data holds ``purged`` itself, whose value the projection replaces."""
    return (
        "purged" not in data
        and len(kept) == len(data) + (0 if "purged" in data else 1)
        and all(key in kept and kept[key] == value for key, value in data.items() if key != "purged")
    )


def _time(at: datetime) -> str:
    if at.tzinfo is None and settings.USE_TZ:  # as the database will store it (DateTimeField warns, then does so)
        at = timezone.make_aware(at, timezone.get_default_timezone())
    if at.tzinfo is not None and at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def message(
    *,
    run: Any,
    checkpoint: Any,
    pipeline_name: str,
    action: str,
    actor: Any,
    timestamp: datetime,
    note: str,
    data: Mapping[str, Any],
    data_digest: bytes,
) -> bytes:
    """The bytes an event's chain covers: the fields a purge keeps (``run``, ``checkpoint``, ``actor``: keys),
    the kept projection of ``data`` and the digest of the full data."""
    kept = redacted_data(str(action), data)
    return _message(run, checkpoint, pipeline_name, action, actor, timestamp, note, kept, data_digest)


def _message(
    run: Any,
    checkpoint: Any,
    pipeline_name: str,
    action: str,
    actor: Any,
    timestamp: datetime,
    note: str,
    kept: Mapping[str, Any],
    data_digest: bytes,
) -> bytes:
    fields = [
        VERSION,
        str(run),
        _key(checkpoint),
        str(pipeline_name),
        str(action),
        _key(actor),
        _time(timestamp),
        str(note),
        _normal(kept),
        data_digest.hex(),
    ]
    return _encode(fields).encode()  # strings and one normalised object: nothing else to normalise


def seal(
    key: bytes,
    *,
    run: Any,
    checkpoint: Any,
    pipeline_name: str,
    action: str,
    actor: Any,
    timestamp: datetime,
    note: str,
    data: Mapping[str, Any],
) -> tuple[bytes, bytes]:
    """An event's ``data_digest`` and the message its chain covers (the fields of :func:`message` but
    ``data_digest``).

    The digest is empty when a purge keeps all of the data (the steps' events, claims…): the chain covers
    every value then, and a digest would only cost its time.
    """
    kept = redacted_data(str(action), data)
    data_digest = b"" if _whole(action, data, kept) else digest(key, data)
    return data_digest, _message(run, checkpoint, pipeline_name, action, actor, timestamp, note, kept, data_digest)


def link(key: bytes, previous: bytes | None, text: bytes) -> bytes:
    """One event's chain: ``HMAC(key, previous || text)`` (``previous`` None: the run's first chained event)."""
    return _mac(key, (previous or b"") + text)


def links(key: bytes, previous: bytes | None, messages: Sequence[bytes]) -> list[bytes]:
    """The chains of events in order, after ``previous``."""
    found = []
    for text in messages:
        previous = link(key, previous, text)
        found.append(previous)
    return found
