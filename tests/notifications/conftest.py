"""The notification tests' cast (with email addresses), their pipelines and settings."""

import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings

from stepkit_django import Review, stepkit

EMAIL = {"email": {"BACKEND": "stepkit_django.notifications.EmailNotifier"}}


def stepkit_settings(**extra):
    """The test project's STEPKIT setting with ``extra``."""
    from django.conf import settings

    return {**settings.STEPKIT, **extra}


@pytest.fixture
def email_notifications():
    """Every review tells its events by email (locmem: ``mailoutbox``), with absolute links."""
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=EMAIL, BASE_URL="https://review.example.com/")):
        yield


@pytest.fixture
def cast(people):
    """The review tests' people, each with an email address, and ``mgr``, who manages runs."""
    manage = Permission.objects.get(content_type__app_label="stepkit_django", codename="manage_pipelinerun")
    mgr = User.objects.create_user("mgr", password="pw")
    mgr.user_permissions.add(manage)
    for user in User.objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    for name in ("alice", "bob", "carol", "dave", "eve", "root"):
        setattr(people, name, User.objects.get(username=name))
    people.mgr = User.objects.get(username="mgr")
    return people


def to(outbox):
    """The sorted recipients of the emails in ``outbox``."""
    return sorted(address for message in outbox for address in message.to)


@pytest.fixture
def invoice_pipeline(registered_pipelines):
    """``invoice``: a reviewed step (``draft``) assigned to the editors, then ``send``; other reviews by argument."""

    def register(name="invoice", **review):
        review.setdefault("assign_to_group", "editors")
        review.setdefault("timeout", timedelta(days=2))
        registered_pipelines(
            stepkit(name)
            .step(
                "draft",
                lambda c: {"payee": "ACME & Co", "amount": 120},
                review=Review(title="Pay {payee} {amount} EUR", summary=["payee", "amount"], **review),
            )
            .step("send", lambda c: {"sent": True})
        )
        return name

    return register


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smtp_settings(port: int, timeout: float = 5) -> dict:
    """Settings that send email through the SMTP server on 127.0.0.1:``port``: ``MAILERS`` on Django 6.1+
    (whose ``EMAIL_*`` settings are deprecated), the ``EMAIL_*`` settings before."""
    import django

    if django.VERSION >= (6, 1):
        smtp: dict[str, object] = {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}
        smtp["OPTIONS"] = {"host": "127.0.0.1", "port": port, "timeout": timeout}
        return {"MAILERS": {"default": smtp}, "DEFAULT_FROM_EMAIL": "stepkit@example.com"}
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": port,
        "EMAIL_TIMEOUT": timeout,
        "DEFAULT_FROM_EMAIL": "stepkit@example.com",
    }


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()
