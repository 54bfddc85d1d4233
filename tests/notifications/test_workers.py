"""Notifications sent by real worker processes (django-tasks-db's ``db_worker``, a Celery worker on the local
Redis) to a real SMTP server (aiosmtpd) on 127.0.0.1."""

import email
import sys
from email.policy import default as default_policy

import pytest
from django.test import override_settings

from stepkit_django import review, start
from stepkit_django.models import Notification, PipelineRun
from stepkit_django.status import NotificationStatus, RunStatus
from tests.processes import TASKS, db_worker, spawn, stop, wait_for

from .conftest import EMAIL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def use_celery():
    """Make the test project's Celery app (and its broker, the local Redis) current, its queue empty."""
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=2).flushdb()
    from tests.celery_app import app  # noqa: F401


def celery_worker(log, **env):
    args = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "--concurrency=1"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
    return spawn(args, log, STEPKIT_EXECUTOR="celery", **env)


@pytest.mark.parametrize("executor", ["tasks", "celery"])
def test_a_worker_emails_the_reviewers_then_the_starter(executor, tmp_path, smtp_server, cast):
    controller, inbox = smtp_server
    if executor == "celery":
        use_celery()  # before the run's message is sent
    log = tmp_path / "worker.log"
    stepkit = {**TASKS, "EXECUTOR": executor, "NOTIFIERS": EMAIL}
    with override_settings(STEPKIT=stepkit):
        run = start("email-approval", {"message": "hello", "customer": "Ann", "to": "ann@example.com"}, user=cast.alice)
        assert run.status == RunStatus.QUEUED  # the worker runs it, pauses it and sends the review requests
        port = str(controller.port)
        worker = db_worker(log, "notifier", STEPKIT_SMTP_PORT=port) if executor == "tasks" else None
        worker = worker or celery_worker(log, STEPKIT_SMTP_PORT=port)
        try:
            wait_for(lambda: len(inbox.messages) == 2, timeout=120, message="two review requests", logs=[log])
            assert sorted(rcpt for _sender, rcpts, _content in inbox.messages for rcpt in rcpts) == [
                "bob@example.com",
                "carol@example.com",
            ]
            review.approve(run.checkpoints.get(), cast.bob)  # written here, sent by the worker
            wait_for(lambda: len(inbox.messages) == 3, timeout=120, message="the approval's email", logs=[log])
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                timeout=120,
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
