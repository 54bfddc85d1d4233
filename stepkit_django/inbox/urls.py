"""The inbox's URLs: ``path("review/", include("stepkit_django.inbox.urls"))`` (namespace ``stepkit_inbox``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from . import link_views, views

app_name = "stepkit_inbox"

urlpatterns: list[URLPattern | URLResolver] = [*views.urlpatterns, *link_views.urlpatterns]
