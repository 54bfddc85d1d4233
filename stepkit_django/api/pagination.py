"""The API's pagination: pages of 50, ``page_size`` up to 200, refused (400) rather than ignored when unusable.

Two styles. The queue, the runs and a run's events are numbered pages (``page``, with a ``count``):
:class:`StepkitPagination`, whose count reads the filtered table without the columns a page shows
(:class:`CountedRows`). The whole audit trail (``GET events/``) grows without end and is read in
order: :class:`TrailPagination` walks it by cursor (``cursor``, no ``count``), from an index on
``(timestamp, id)``, so that page 10,000 costs what page 1 does and nothing counts millions of rows.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from drf_spectacular.settings import spectacular_settings
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request

__all__ = ["CountedRows", "StepkitPagination", "TrailPagination"]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _checked_page_size(request: Request, param: str, most: int) -> None:
    """Refuse a ``page_size`` DRF would silently replace by the default.

    The length is checked before int(), which refuses more than 4,300 digits (ValueError, a 500).
    """
    raw = request.query_params.get(param)
    usable = raw is None or (raw.isascii() and raw.isdigit() and len(raw) <= len(str(most)) and 1 <= int(raw) <= most)
    if not usable:
        message = gettext("Use a whole number from 1 to %(max)d.") % {"max": most}
        raise ValidationError({"page_size": [message]})


def _links_required(paginated: dict[str, Any]) -> dict[str, Any]:
    # DRF marks next/previous with OpenAPI 3.0's "nullable", which 3.1 ignores: null in 3.1's words.
    # Both are always sent (null on the first and last page).
    paginated["required"] = sorted({*paginated.get("required", []), "next", "previous"})
    if not spectacular_settings.OAS_VERSION.startswith("3.0"):
        for name in ("next", "previous"):
            link = paginated["properties"][name]
            if link.pop("nullable", False):
                link["type"] = [link["type"], "null"]
    return paginated


class CountedRows:
    """Rows to paginate (``rows``, e.g. a ``values()`` queryset) counted on another queryset (``counted``).

    A ``values()`` that reads a related column (``claimed_by__username``) joins its table, and
    ``rows.count()`` keeps that join: on PostgreSQL the count then reads the table's pages instead of
    an index alone. ``counted`` is the same filtered queryset without those columns, or anything with a
    ``count()`` (:class:`stepkit_django.pending_counts.Counted`: a count from the summary).
    """

    def __init__(self, rows: QuerySet[Any], counted: Any) -> None:
        self.rows = rows
        self.counted = counted

    def count(self) -> int:
        return int(self.counted.count())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    @property
    def ordered(self) -> bool:
        return self.rows.ordered


class StepkitPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int | None:
        _checked_page_size(request, self.page_size_query_param, self.max_page_size)
        return super().get_page_size(request)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _links_required(super().get_paginated_response_schema(schema))


class TrailPagination(CursorPagination):
    """Audit events by cursor, oldest first (``?ordering=-timestamp``: newest first); ``next`` and
    ``previous`` links, no count. A cursor that was not given by a link is a 400 on ``cursor``."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = ("timestamp", "id")
    #: The field of the position a cursor holds (the first of the ordering).
    position_field = "timestamp"

    def get_page_size(self, request: Request) -> int | None:
        _checked_page_size(request, self.page_size_query_param, self.max_page_size)
        return super().get_page_size(request)

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        # The time first (the cursor's position), then the id in the same direction: a total order,
        # so that events written in the same microsecond are neither skipped nor repeated.
        first = super().get_ordering(request, queryset, view)[0]
        return (first, "-id" if first.startswith("-") else "id")

    def decode_cursor(self, request: Request) -> Cursor | None:
        message = gettext("This cursor is not one of the API's links; follow next or previous, or leave it out.")
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [message]}) from None
        if cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(str(cursor.position)) is not None
            except ValueError:
                valid = False
            if not valid:
                raise ValidationError({self.cursor_query_param: [message]})
        return cursor

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _links_required(super().get_paginated_response_schema(schema))
