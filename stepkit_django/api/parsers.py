"""The API's JSON parser: refuses what PostgreSQL or the server cannot take, as a 400."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

#: Deeper JSON is refused: no context needs it, and very deep input exhausts the stack.
MAX_DEPTH = 64


def check_json_value(data: Any) -> None:
    """Raise ParseError for NUL characters (PostgreSQL refuses them in text and jsonb) or too much nesting."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(value, str):
            if "\x00" in value:
                raise ParseError("Strings must not contain NUL characters (\\u0000).")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise ParseError("Keys must not contain NUL characters (\\u0000).")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


class StepkitJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON is nested more than {MAX_DEPTH} levels deep.") from None
        check_json_value(data)
        return data
