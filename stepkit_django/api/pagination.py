"""The API's pagination: pages of 50, ``page_size`` up to 200, refused (400) rather than ignored when unusable."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.settings import spectacular_settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

__all__ = ["StepkitPagination"]


class StepkitPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        # DRF falls back to the default for a page_size it cannot use; say so instead. The length
        # is checked before int(), which refuses more than 4,300 digits (ValueError, a 500).
        raw = request.query_params.get(self.page_size_query_param)
        usable = raw is None or (
            raw.isascii()
            and raw.isdigit()
            and len(raw) <= len(str(self.max_page_size))
            and 1 <= int(raw) <= self.max_page_size
        )
        if not usable:
            message = gettext("Use a whole number from 1 to %(max)d.") % {"max": self.max_page_size}
            raise ValidationError({"page_size": [message]})
        return super().get_page_size(request)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # DRF marks next/previous with OpenAPI 3.0's "nullable", which 3.1 ignores: null in 3.1's words.
        # Both are always sent (null on the first and last page).
        paginated: dict[str, Any] = super().get_paginated_response_schema(schema)
        paginated["required"] = sorted({*paginated.get("required", []), "next", "previous"})
        if not spectacular_settings.OAS_VERSION.startswith("3.0"):
            for link in paginated["properties"].values():
                if link.pop("nullable", False):
                    link["type"] = [link["type"], "null"]
        return paginated
