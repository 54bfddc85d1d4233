"""An email received by a real SMTP server (aiosmtpd on 127.0.0.1) through Django's SMTP backend."""

import email
from email.policy import default as default_policy

import pytest
from django.test import override_settings

from stepkit_django import start
from stepkit_django.models import Notification
from stepkit_django.notifications.delivery import deliver
from stepkit_django.status import NotificationStatus

from .conftest import EMAIL, smtp_settings, stepkit_settings

pytestmark = pytest.mark.django_db


def test_a_review_request_reaches_a_real_smtp_server(smtp_server, cast, invoice_pipeline):
    controller, inbox = smtp_server
    invoice_pipeline(assign_to_group=None, assign_to_user="bob")
    smtp = smtp_settings(controller.port)
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=EMAIL), **smtp):
        run = start("invoice", {}, user=cast.alice)
        notification = Notification.objects.get()
        assert deliver(notification.pk) is True
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    [(sender, recipients, content)] = inbox.messages
    assert (sender, recipients) == ("stepkit@example.com", ["bob@example.com"])
    message = email.message_from_bytes(content, policy=default_policy)
    assert message["Subject"] == "Review requested: Pay ACME & Co 120 EUR"
    assert message["X-Stepkit-Notification"].strip() == notification.key  # a long header is folded
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    cp = run.checkpoints.get()
    assert f"/review/{cp.pk}/" in text and "ACME &amp; Co" in html
