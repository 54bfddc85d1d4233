"""Conditional requests: a checkpoint's ``ETag`` and the ``If-Match`` of a decision (412 when it does not match)."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework.request import Request

from ..models import Checkpoint
from .exceptions import PreconditionFailed

__all__ = ["etag", "if_match_version"]

#: The largest version an ETag can name (the column is a 63-bit integer).
_MAX_VERSION = 2**63


def etag(checkpoint: Checkpoint) -> str:
    """``"<id>-<version>"``: it changes with every change of the checkpoint."""
    return f'"{checkpoint.pk}-{checkpoint.version}"'


def if_match_version(request: Request, checkpoint: Checkpoint) -> int | None:
    """The version of ``checkpoint`` that the request's ``If-Match`` names: None without one (or for ``*``).

    Raises :class:`PreconditionFailed` (412) unless one of its ETags is the checkpoint's
    current one. A version is read only as an ETag writes it (canonical decimal, under
    2**63): anything else, such as 5,000 digits that ``int()`` refuses, matches no ETag.
    """
    header = request.headers.get("If-Match")
    if not header:
        return None
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    if "*" in tags:
        return None
    prefix = f'"{checkpoint.pk}-'
    for tag in tags:
        version = tag.removeprefix(prefix).removesuffix('"')
        if not (tag.startswith(prefix) and tag.endswith('"') and version.isascii() and version.isdigit()):
            continue
        canonical = len(version) <= len(str(_MAX_VERSION)) and str(int(version)) == version
        if canonical and int(version) == checkpoint.version:
            return checkpoint.version
    raise PreconditionFailed(gettext("The checkpoint changed: its ETag is now %(etag)s.") % {"etag": etag(checkpoint)})
