"""The pages of signed action links: a confirmation on GET (never a decision), the decision on POST."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
