"""The API's JSON parser: refuses what PostgreSQL or the server cannot take, as a 400."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..jsonchecks import MAX_DEPTH, UnsafeJSON, too_deep
from ..jsonchecks import check_json_value as check_json

__all__ = ["MAX_DEPTH", "StepkitJSONParser", "check_json_value"]


def refused(error: UnsafeJSON) -> ParseError:
    """A 400 saying what is wrong in ``detail`` and, when it is inside a field, under that field too."""
    detail: dict[str, Any] = {"detail": error.message}
    if error.path and isinstance(error.path[0], str):
        detail[error.path[0]] = [error.message]
    return ParseError(detail)


def check_json_value(data: Any) -> None:
    """Raise ParseError for NUL characters or lone surrogates (PostgreSQL refuses them in text and jsonb), or too
    much nesting (see :func:`stepkit_django.jsonchecks.check_json_value`)."""
    try:
        check_json(data)
    except UnsafeJSON as error:
        raise refused(error) from None


class StepkitJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise refused(too_deep()) from None
        check_json_value(data)
        return data
