"""Delivery: claimed before sending, retried with backoff, failed for good after the last attempt, and a sender's
lease that runs out leaves the notification to the sweep; each executor sends through the one entry function."""

from datetime import timedelta
from io import StringIO
from typing import ClassVar

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from stepkit_django import start, stepkit
from stepkit_django.exceptions import NotifierMisconfigured
from stepkit_django.execution.executors import CeleryExecutor
from stepkit_django.models import Notification
from stepkit_django.notifications import BaseNotifier
from stepkit_django.notifications.delivery import backoff, claim, deliver, deliver_due
from stepkit_django.notifications.notifiers import get_notifier
from stepkit_django.status import NotificationStatus

from .conftest import stepkit_settings

pytestmark = pytest.mark.django_db


class Flaky(BaseNotifier):
    """Fails ``failures`` times, then records what it sends."""

    sent: ClassVar[list[str]] = []
    calls: ClassVar[list[str]] = []
    failures: ClassVar[int] = 0

    def send(self, notification, message):
        Flaky.calls.append(notification.key)
        if len(Flaky.calls) <= Flaky.failures:
            raise ConnectionError(f"down (call {len(Flaky.calls)})")
        Flaky.sent.append(message.title)


@pytest.fixture
def flaky():
    Flaky.sent, Flaky.calls, Flaky.failures = [], [], 0
    notifiers = {"flaky": {"BACKEND": f"{__name__}.Flaky"}}
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers, NOTIFY_MAX_ATTEMPTS=3)):
        yield Flaky


@pytest.fixture
def failed_run(registered_pipelines, people):
    """A run that failed (one notification by the recipient-less ``flaky`` notifier), its sends not run yet."""

    def boom(context):
        raise ValueError("no")

    registered_pipelines(stepkit("fails").step("boom", boom))
    start("fails", {}, user=people.alice)  # inside the test's transaction: the on-commit send never runs
    return Notification.objects.get()


def test_a_failed_send_is_retried_with_backoff_then_marked_failed(flaky, failed_run):
    flaky.failures = 10
    now = timezone.now()
    assert deliver(failed_run.pk, now) is False
    failed_run.refresh_from_db()
    assert (failed_run.status, failed_run.attempts) == (NotificationStatus.PENDING, 1)
    assert failed_run.next_attempt_at == now + timedelta(seconds=30)
    assert "ConnectionError: down (call 1)" in failed_run.last_error
    assert deliver_due(now + timedelta(seconds=29)) == 0 and len(flaky.calls) == 1  # not due yet
    deliver_due(now + timedelta(seconds=30))
    failed_run.refresh_from_db()
    assert failed_run.attempts == 2 and failed_run.next_attempt_at == now + timedelta(seconds=30 + 60)
    deliver_due(now + timedelta(seconds=90))
    failed_run.refresh_from_db()
    assert (failed_run.status, failed_run.attempts) == (NotificationStatus.FAILED, 3)  # NOTIFY_MAX_ATTEMPTS
    assert deliver_due(now + timedelta(days=1)) == 0 and len(flaky.calls) == 3  # failed for good: left alone


def test_a_send_that_fails_twice_is_sent_on_the_third_attempt_once(flaky, failed_run):
    flaky.failures = 2
    now = timezone.now()
    deliver(failed_run.pk, now)
    deliver_due(now + timedelta(minutes=1))
    assert deliver_due(now + timedelta(minutes=5)) == 1
    failed_run.refresh_from_db()
    assert (failed_run.status, failed_run.attempts, failed_run.last_error) == (NotificationStatus.SENT, 3, "")
    assert failed_run.sent_at is not None and flaky.sent == ["fails"]
    assert deliver_due(now + timedelta(days=1)) == 0 and deliver(failed_run.pk) is False
    assert flaky.sent == ["fails"]


def test_a_sender_that_died_mid_send_leaves_the_notification_to_the_sweep(flaky, failed_run):
    now = timezone.now()
    assert claim(failed_run.pk, now) == 1  # a worker claimed it, then was killed before recording anything
    assert deliver(failed_run.pk, now + timedelta(minutes=1)) is False  # its lease holds: nobody else sends
    assert deliver_due(now + timedelta(minutes=4, seconds=59)) == 0
    assert deliver_due(now + timedelta(minutes=5)) == 1  # NOTIFY_LEASE ran out: sent by the sweep
    failed_run.refresh_from_db()
    assert (failed_run.status, failed_run.attempts, flaky.sent) == (NotificationStatus.SENT, 2, ["fails"])


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (30, 60, 120)]
    assert backoff(20) == timedelta(hours=1)


def test_an_unknown_notifier_fails_the_attempt_with_a_clear_error(flaky, failed_run):
    Notification.objects.filter(pk=failed_run.pk).update(channel="gone")
    deliver(failed_run.pk)
    failed_run.refresh_from_db()
    assert "NotifierMisconfigured: No notifier is named 'gone'" in failed_run.last_error


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"BACKEND": "no.such.Notifier"}, "cannot import its BACKEND"),
        ({"BACKEND": "stepkit_django.models.Checkpoint"}, "not a BaseNotifier subclass"),
        ({"BACKEND": "stepkit_django.notifications.WebhookNotifier"}, "invalid OPTIONS"),
        ({"BACKEND": "stepkit_django.notifications.WebhookNotifier", "OPTIONS": {"url": "file:///etc/passwd"}}, "http"),
        ("email", 'with a "BACKEND"'),
    ],
)
def test_a_misconfigured_notifier_is_named_in_the_error(spec, error):
    with (
        override_settings(STEPKIT=stepkit_settings(NOTIFIERS={"bad": spec})),
        pytest.raises(NotifierMisconfigured) as e,
    ):
        get_notifier("bad")
    assert error in str(e.value)


def test_a_misconfigured_notifier_never_blocks_the_event(registered_pipelines, people, caplog):
    registered_pipelines(stepkit("fails").step("boom", lambda c: 1 / 0))
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS={"bad": {"BACKEND": "no.such.Notifier"}})):
        run = start("fails", {}, user=people.alice)
    assert run.status == "failed" and Notification.objects.count() == 0
    assert "Notifier 'bad' cannot tell run_failed" in caplog.text


def test_the_tasks_executor_sends_through_a_task(
    flaky, registered_pipelines, people, django_capture_on_commit_callbacks
):
    immediate = (
        "django.tasks.backends.immediate.ImmediateBackend"
        if __import__("importlib.util").util.find_spec("django.tasks")
        else "django_tasks.backends.immediate.ImmediateBackend"
    )
    registered_pipelines(stepkit("fails").step("boom", lambda c: 1 / 0))
    settings = stepkit_settings(NOTIFIERS={"flaky": {"BACKEND": f"{__name__}.Flaky"}}, EXECUTOR="tasks")
    with (
        override_settings(STEPKIT=settings, TASKS={"default": {"BACKEND": immediate}}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        start("fails", {}, user=people.alice)  # queued: the task runs it after the commit, then the send's task
    assert flaky.sent == ["fails"] and Notification.objects.get().status == NotificationStatus.SENT


def test_the_celery_executor_sends_the_notification_s_id(monkeypatch, db):
    sent = []
    from stepkit_django.contrib import celery

    monkeypatch.setattr(celery.deliver_notification, "apply_async", lambda **kwargs: sent.append(kwargs))
    CeleryExecutor().enqueue_notification(42)
    assert sent == [{"args": [42]}]


def test_stepkit_sweep_sends_the_notifications_due(flaky, failed_run):
    flaky.failures = 1
    out = StringIO()
    notifiers = {"flaky": {"BACKEND": f"{__name__}.Flaky"}}
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers, NOTIFY_RETRY_DELAY=timedelta(0))):
        deliver(failed_run.pk)  # fails: due again at once
        call_command("stepkit_sweep", stdout=out)
    assert "1 notification(s) sent" in out.getvalue()
    failed_run.refresh_from_db()
    assert (failed_run.status, flaky.sent) == (NotificationStatus.SENT, ["fails"])


@pytest.mark.parametrize(
    ("extra", "check_id"),
    [
        ({"NOTIFIERS": {"bad": {"BACKEND": "no.such.Notifier"}}}, "stepkit_django.E007"),
        ({"NOTIFIERS": ["email"]}, "stepkit_django.E007"),
        ({"NOTIFY_MAX_ATTEMPTS": 0}, "stepkit_django.E008"),
        ({"NOTIFY_LEASE": timedelta(0)}, "stepkit_django.E008"),
        ({"NOTIFY_RETRY_DELAY": 30}, "stepkit_django.E008"),
    ],
)
def test_the_system_checks_name_a_misconfigured_notification_setting(extra, check_id):
    from stepkit_django.checks import check_settings

    with override_settings(STEPKIT=stepkit_settings(**extra)):
        assert [e.id for e in check_settings()] == [check_id]


def test_the_system_checks_accept_the_built_in_notifiers():
    from stepkit_django.checks import check_settings

    notifiers = {
        "email": {"BACKEND": "stepkit_django.notifications.EmailNotifier"},
        "hook": {"BACKEND": "stepkit_django.notifications.WebhookNotifier", "OPTIONS": {"url": "https://x.example"}},
    }
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers)):
        assert check_settings() == []


class Slow(BaseNotifier):
    """Takes a while to send, so that two senders overlap."""

    sent: ClassVar[list[str]] = []

    def send(self, notification, message):
        import time

        time.sleep(0.3)
        Slow.sent.append(notification.key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_senders_of_one_notification_send_it_once():
    import threading

    from django.db import connection

    from stepkit_django.models import PipelineRun

    Slow.sent = []
    run = PipelineRun.objects.create(pipeline_name="fails", status="failed")
    pk = Notification.objects.create(key="k" * 64, event="run_failed", channel="slow", run=run).pk
    results = []
    barrier = threading.Barrier(2)

    def sender():
        barrier.wait()
        try:
            results.append(deliver(pk))  # a task and its re-delivery, at the same moment
        finally:
            connection.close()

    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS={"slow": {"BACKEND": f"{__name__}.Slow"}})):
        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == [False, True] and Slow.sent == ["k" * 64]
    assert Notification.objects.get(pk=pk).attempts == 1


class Slow3Minutes(BaseNotifier):
    """Each send takes three minutes of a fake clock (less than the five-minute lease) and fails; meanwhile another
    sweep tries to claim the notification being sent."""

    clock: ClassVar[list] = []
    taken: ClassVar[list] = []

    def send(self, notification, message):
        Slow3Minutes.clock[0] += timedelta(minutes=3)
        Slow3Minutes.taken.append(claim(notification.pk, Slow3Minutes.clock[0]))
        raise ConnectionError("slow, then down")


def test_a_long_sweep_gives_each_notification_its_lease_and_backoff_from_its_own_attempt(monkeypatch):
    from types import SimpleNamespace

    from stepkit_django.models import PipelineRun
    from stepkit_django.notifications import delivery

    start_at = timezone.now()
    run = PipelineRun.objects.create(pipeline_name="fails", status="failed")
    pks = [
        Notification.objects.create(
            key=c * 64, event="run_failed", channel="slow", run=run, next_attempt_at=start_at - timedelta(seconds=1)
        ).pk
        for c in "ab"
    ]
    Slow3Minutes.clock, Slow3Minutes.taken = [start_at], []
    monkeypatch.setattr(delivery, "timezone", SimpleNamespace(now=lambda: Slow3Minutes.clock[0]))
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS={"slow": {"BACKEND": f"{__name__}.Slow3Minutes"}})):
        assert deliver_due(start_at) == 0
    # The second was claimed three minutes into the sweep: its lease ran from then, so no other sweep took it
    # while it was being sent (from the sweep's start, it would have run out mid-send), and its retry waits
    # NOTIFY_RETRY_DELAY from that attempt, not from the sweep's start.
    assert Slow3Minutes.taken == [None, None]
    rows = Notification.objects.filter(pk__in=pks).order_by("key")
    assert [row.attempts for row in rows] == [1, 1]
    assert [row.next_attempt_at for row in rows] == [
        start_at + timedelta(seconds=30),
        start_at + timedelta(minutes=3, seconds=30),
    ]
