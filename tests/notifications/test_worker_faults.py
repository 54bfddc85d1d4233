"""Faults around real senders: a db_worker SIGKILLed while its SMTP server holds the message (the sweep sends it
after the lease, and the receiver has it twice at most), and events in rolled-back transactions (a real worker
and a real SMTP server on 127.0.0.1 see nothing of them)."""

import asyncio
import email
import os
import signal
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from email.policy import default as default_policy

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from stepkit_django import review, start
from stepkit_django.models import Notification, PipelineRun
from stepkit_django.notifications.delivery import deliver, deliver_due
from stepkit_django.status import CheckpointStatus, NotificationEvent, NotificationStatus, RunStatus
from tests.processes import TASKS, db_worker, spawn, stop, wait_for

from .conftest import EMAIL, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: The notification lease of the processes in these tests (seconds): a killed sender is replaced after it.
LEASE = 4.0
EMAIL_INPUT = {"message": "hello", "customer": "Ann", "to": "ann@example.com"}


def parse(content):
    message = email.message_from_bytes(content, policy=default_policy)
    return message["X-Stepkit-Notification"].strip(), message["Subject"]


class HoldingInbox:
    """An aiosmtpd handler that keeps every message, and holds the first one: it has the whole message but
    answers nothing (as a slow receiver) until released, or for 60 seconds at most."""

    def __init__(self):
        self.messages = []  # (notification key, subject, recipients)
        self.held = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        key, subject = parse(envelope.content)
        self.messages.append((key, subject, list(envelope.rcpt_tos)))
        if len(self.messages) > 1:
            return "250 Message accepted for delivery"
        self.held.set()
        deadline = time.monotonic() + 60
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return "451 Try again later"

    def keys(self):
        return Counter(key for key, _subject, _to in self.messages)


@pytest.fixture
def holding_smtp_server():
    from aiosmtpd.controller import Controller

    inbox = HoldingInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        inbox.release.set()
        controller.stop()


def sweep_process(log, **env):
    """``manage.py stepkit_sweep`` as a process of its own (what cron runs); its output."""
    process = spawn([sys.executable, "-m", "django", "stepkit_sweep"], log, **env)
    try:
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        stop(process)
    return log.read_text()


def test_a_worker_killed_mid_send_leaves_the_notification_to_the_sweep_which_sends_it_once_more(
    tmp_path, holding_smtp_server, cast
):
    port, inbox = holding_smtp_server
    env = {"STEPKIT_SMTP_PORT": str(port), "STEPKIT_NOTIFY_LEASE_SECONDS": str(LEASE)}
    logs = [tmp_path / "killed.log", tmp_path / "fresh.log", tmp_path / "sweep.log", tmp_path / "sweep-2.log"]
    with override_settings(STEPKIT={**TASKS, "NOTIFIERS": EMAIL}):
        run = start("email-approval", EMAIL_INPUT, user=cast.alice)  # the worker runs it, then sends
    killed_worker = db_worker(logs[0], "killed", **env)
    try:
        wait_for(inbox.held.is_set, timeout=90, message="the first review request to reach the server", logs=logs)
        os.kill(killed_worker.pid, signal.SIGKILL)  # while the server holds the message it received
        assert killed_worker.wait(timeout=15) == -signal.SIGKILL
    finally:
        stop(killed_worker)
    inbox.release.set()
    [held] = inbox.keys()
    killed = Notification.objects.get(key=held)
    assert (killed.status, killed.attempts, killed.sent_at) == (NotificationStatus.PENDING, 1, None)
    with override_settings(STEPKIT={**TASKS, "NOTIFIERS": EMAIL, "NOTIFY_LEASE": timedelta(seconds=LEASE)}):
        assert deliver(killed.pk, killed.next_attempt_at - timedelta(milliseconds=1)) is False  # its lease holds

    fresh_worker = db_worker(logs[1], "fresh", **env)
    try:
        # The fresh worker sends the other review request, still queued; the killed send's task died with its
        # worker, so the sweep sends that one once the lease has run out.
        other = Notification.objects.exclude(key=held).get()
        wait_for(
            lambda: Notification.objects.get(pk=other.pk).status == NotificationStatus.SENT,
            timeout=90,
            message="the fresh worker to send the queued review request",
            logs=logs,
        )
        time.sleep(max(0.0, (killed.next_attempt_at - timezone.now()).total_seconds()) + 0.5)
        assert "1 notification(s) sent" in sweep_process(logs[2], **env)
        assert "0 notification(s) sent" in sweep_process(logs[3], **env)  # sent: nothing claims it again
    finally:
        stop(fresh_worker)

    killed.refresh_from_db()
    assert (killed.status, killed.attempts, killed.last_error) == (NotificationStatus.SENT, 2, "")
    assert Notification.objects.get(pk=other.pk).attempts == 1
    # The receiver had the killed send's message already: it sees it twice (the most it may), the other once.
    assert inbox.keys() == Counter({held: 2, other.key: 1})
    assert sorted(rcpt for _key, _subject, rcpts in inbox.messages[1:] for rcpt in rcpts) == [
        "bob@example.com",
        "carol@example.com",
    ]
    assert PipelineRun.objects.get(pk=run.pk).status == RunStatus.PAUSED


def test_events_in_rolled_back_transactions_reach_neither_the_worker_nor_the_smtp_server(tmp_path, smtp_server, cast):
    controller, inbox = smtp_server
    log = tmp_path / "worker.log"
    stepkit = {**TASKS, "NOTIFIERS": EMAIL}

    def subjects():
        return [email.message_from_bytes(m[2], policy=default_policy)["Subject"] for m in inbox.messages]

    worker = db_worker(log, "notifier", STEPKIT_SMTP_PORT=str(controller.port))
    try:
        with override_settings(STEPKIT=stepkit):
            run = start("email-approval", EMAIL_INPUT, user=cast.alice)
            wait_for(lambda: len(inbox.messages) == 2, timeout=90, message="the two review requests", logs=[log])
            checkpoint = run.checkpoints.get()
            with pytest.raises(RuntimeError), transaction.atomic():
                review.reject(checkpoint, cast.bob, comment="no")
                assert Notification.objects.filter(event=NotificationEvent.REJECTED).count() == 1  # written with it
                raise RuntimeError("the caller's transaction fails after the decision")
            checkpoint.refresh_from_db()
            with transaction.atomic():  # commits: what its rolled-back savepoint did is not told
                with pytest.raises(RuntimeError), transaction.atomic():
                    review.reject(checkpoint, cast.carol, comment="no")
                    raise RuntimeError("the savepoint fails after the decision")
                checkpoint.refresh_from_db()
                assert checkpoint.status == CheckpointStatus.PENDING
                review.approve(checkpoint, cast.bob)
            wait_for(lambda: len(inbox.messages) == 3, timeout=90, message="the approval's email", logs=[log])
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                timeout=90,
                message="the run to complete (the worker has done all it was given)",
                logs=[log],
            )
            assert deliver_due() == 0  # nothing left behind for the sweep either
    finally:
        stop(worker)
    assert len(inbox.messages) == 3 and subjects()[2].startswith("Approved:")
    assert not any(subject.startswith("Rejected") for subject in subjects())
    assert not Notification.objects.filter(event=NotificationEvent.REJECTED).exists()
    assert sorted(Notification.objects.values_list("event", "status")) == [
        (NotificationEvent.APPROVED, NotificationStatus.SENT),
        (NotificationEvent.REVIEW_REQUESTED, NotificationStatus.SENT),
        (NotificationEvent.REVIEW_REQUESTED, NotificationStatus.SENT),
    ]
