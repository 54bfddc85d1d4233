"""Notifications sent by a real ``db_worker`` process to a real SMTP server (aiosmtpd) on 127.0.0.1."""

import email
from email.policy import default as default_policy

import pytest
from django.test import override_settings

from stepkit_django import review, start
from stepkit_django.models import Notification, PipelineRun
from stepkit_django.status import NotificationStatus, RunStatus
from tests.processes import TASKS, db_worker, stop, wait_for

from .conftest import EMAIL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_db_worker_emails_the_reviewers_then_the_starter(tmp_path, smtp_server, cast):
    controller, inbox = smtp_server
    log = tmp_path / "worker.log"
    with override_settings(STEPKIT={**TASKS, "NOTIFIERS": EMAIL}):
        run = start("email-approval", {"message": "hello", "customer": "Ann", "to": "ann@example.com"}, user=cast.alice)
        assert run.status == RunStatus.QUEUED  # the worker runs it, pauses it and sends the review requests
        worker = db_worker(log, "notifier", STEPKIT_SMTP_PORT=str(controller.port))
        try:
            wait_for(lambda: len(inbox.messages) == 2, timeout=90, message="two review requests", logs=[log])
            assert sorted(rcpt for _sender, rcpts, _content in inbox.messages for rcpt in rcpts) == [
                "bob@example.com",
                "carol@example.com",
            ]
            review.approve(run.checkpoints.get(), cast.bob)  # written here, sent by the worker
            wait_for(lambda: len(inbox.messages) == 3, timeout=90, message="the approval's email", logs=[log])
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                timeout=90,
                message="the run to complete",
                logs=[log],
            )
        finally:
            stop(worker)
    _sender, recipients, content = inbox.messages[2]
    assert recipients == ["alice@example.com"]
    assert email.message_from_bytes(content, policy=default_policy)["Subject"].startswith("Approved:")
    sent = Notification.objects.values_list("status", "attempts")
    assert sorted(sent) == [(NotificationStatus.SENT, 1)] * 3  # each sent once, at the first attempt
