"""A project without the inbox: the admin only (``Checkpoint.get_absolute_url`` falls back to it)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
