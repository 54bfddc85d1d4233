"""Reminders: ``due_soon`` to the reviewers before the deadline, again every ``remind_every``, never after it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from stepkit_django import Review, review, start
from stepkit_django.execution.jobs import sweep
from stepkit_django.models import Notification
from stepkit_django.notifications.reminders import send_reminders
from stepkit_django.status import NotificationEvent

from .conftest import to

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("email_notifications")]

HOUR = timedelta(hours=1)


def reminders_sent():
    return Notification.objects.filter(event=NotificationEvent.DUE_SOON)


def test_reviewers_are_reminded_before_the_deadline_then_every_period(
    cast, invoice_pipeline, mailoutbox, django_capture_on_commit_callbacks
):
    invoice_pipeline(remind_before=timedelta(days=1), remind_every=6 * HOUR)  # timeout: 2 days
    run = start("invoice", {}, user=cast.alice)
    cp = run.checkpoints.get()
    assert cp.next_reminder_at == cp.expires_at - timedelta(days=1)
    now = cp.created_at
    assert send_reminders(now + 23 * HOUR) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert send_reminders(now + 24 * HOUR) == 1
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]
    assert mailoutbox[0].subject == "Review due soon: Pay ACME & Co 120 EUR"
    assert send_reminders(now + 25 * HOUR) == 0  # once per period, however often the sweep runs
    assert send_reminders(now + 30 * HOUR) == 1
    assert send_reminders(now + 36 * HOUR) == 1
    assert send_reminders(now + 42 * HOUR) == 1
    cp.refresh_from_db()
    assert cp.next_reminder_at is None  # the next one would be at the deadline: none
    assert send_reminders(now + 100 * HOUR) == 0
    assert reminders_sent().count() == 4 * 2  # four reminders, to bob and carol


def test_remind_every_alone_needs_no_deadline(cast, invoice_pipeline):
    invoice_pipeline(timeout=None, remind_every=timedelta(days=1))
    cp = start("invoice", {}, user=cast.alice).checkpoints.get()
    assert cp.expires_at is None and cp.next_reminder_at == cp.created_at + timedelta(days=1)
    assert send_reminders(cp.created_at + timedelta(days=1)) == 1
    assert send_reminders(cp.created_at + timedelta(days=2)) == 1


def test_a_decided_item_is_not_reminded(cast, invoice_pipeline):
    invoice_pipeline(remind_before=timedelta(days=1))
    run = start("invoice", {}, user=cast.alice)
    cp = review.approve(run.checkpoints.get(), cast.bob)
    assert send_reminders(cp.created_at + timedelta(days=1, hours=1)) == 0 and reminders_sent().count() == 0


def test_without_reminders_nothing_is_scheduled(cast, invoice_pipeline):
    invoice_pipeline()
    assert start("invoice", {}, user=cast.alice).checkpoints.get().next_reminder_at is None


def test_the_sweep_reminds_and_expires(cast, invoice_pipeline):
    invoice_pipeline(remind_before=timedelta(days=1))
    cp = start("invoice", {}, user=cast.alice).checkpoints.get()
    assert sweep(cp.created_at + timedelta(days=1, hours=1))["reminded"] == 1
    done = sweep(timezone.now() + timedelta(days=3))
    assert (done["expired"], done["reminded"]) == (1, 0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"remind_before": timedelta(hours=1)}, "needs a timeout"),
        ({"remind_before": timedelta(0), "timeout": HOUR}, "positive timedelta"),
        ({"remind_every": 3600}, "positive timedelta"),
    ],
)
def test_invalid_reminders_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Review(**arguments)
