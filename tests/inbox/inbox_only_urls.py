"""A project with the inbox and no admin."""

from django.urls import include, path

urlpatterns = [path("review/", include("stepkit_django.inbox.urls"))]
