"""The link tests' pipeline and helpers: a payment assigned to the editors (bob, carol), started by alice."""

import re

import pytest
from django.apps import apps
from django.test import Client

from stepkit_django import Review, start, stepkit


@pytest.fixture
def paused(registered_pipelines, people):
    """``paused(**review)``: a pending checkpoint of ``links-pay``, its review built with ``review``."""

    def make(name="links-pay", **review):
        review.setdefault("assign_to_group", "editors")
        registered_pipelines(
            stepkit(name)
            .step(
                "draft",
                lambda c: {"payee": "ACME & Co", "amount": 120, "note": "line one\nline two"},
                review=Review(title="Pay {payee} {amount} EUR", summary=["payee", "amount"], **review),
            )
            .step("send", lambda c: {"sent": True})
        )
        return start(name, {}, user=people.alice).checkpoints.get()

    return make


def whole_database():
    """Every row of every table of the project (models of every installed app), to compare before/after."""
    rows = {}
    for model in apps.get_models():
        rows[model._meta.label] = sorted(map(repr, model._default_manager.order_by().values()))
    return rows


def logged_in(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


# The notification tests' cast (with email addresses) and SMTP server.
from tests.notifications.conftest import cast, smtp_server  # noqa: E402, F401

LINK = re.compile(r"(?:https?://[^/\s]+)?(/review/link/[^/\s]+/)")


def links_in(text):
    """The paths of the action links in an email's text, in order."""
    return LINK.findall(text)
