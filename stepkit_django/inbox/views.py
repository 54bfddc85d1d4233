"""The inbox's pages: the queue, "Review next", the review page and my decisions."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
