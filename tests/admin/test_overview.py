"""The queue overview's counts: pending work per step, decisions per day in the current time zone."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from stepkit_django import review, start
from stepkit_django.admin.overview import overview_context
from stepkit_django.models import Checkpoint

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
PARIS = ZoneInfo("Europe/Paris")


def paused(people, n):
    return [start("email-approval", EMAIL, user=people.alice).checkpoints.get() for _ in range(n)]


def decided_at(checkpoint, when):
    Checkpoint.objects.filter(pk=checkpoint.pk).update(decided_at=when)


@override_settings(TIME_ZONE="Europe/Paris")
def test_decisions_are_counted_on_their_day_in_the_current_time_zone(people):
    approved, rejected, old = paused(people, 3)
    review.approve(approved, people.bob)
    review.reject(rejected, people.bob)
    review.approve(old, people.bob)
    today = timezone.localdate()
    first = today - timedelta(days=29)
    # 23:30 in Paris on the window's first day is 21:30 or 22:30 UTC: that day, not the next.
    decided_at(approved, datetime(first.year, first.month, first.day, 23, 30, tzinfo=PARIS))
    # Just after midnight in Paris on the first day is still the day before in UTC: counted.
    decided_at(rejected, datetime(first.year, first.month, first.day, 0, 15, tzinfo=PARIS))
    # A minute before the first day's midnight in Paris: outside the window.
    decided_at(old, datetime(first.year, first.month, first.day, tzinfo=PARIS) - timedelta(minutes=1))
    with timezone.override(PARIS):
        overview = overview_context(Checkpoint.objects.for_user(people.bob))
    assert overview["decisions_total"] == 2
    chart = str(overview["chart"])
    assert f"{first}: 1 approved" in chart and f"{first}: 1 rejected" in chart


def test_an_item_assigned_to_a_reviewer_and_their_group_counts_once(people):
    pending, decided = paused(people, 2)  # assigned to the editors, bob's group
    for checkpoint in (pending, decided):
        checkpoint.assigned_users.add(people.bob)
    review.approve(decided, people.bob)
    overview = overview_context(Checkpoint.objects.for_user(people.bob))
    assert overview["pending_total"] == 1
    assert [(row["step"], row["count"]) for row in overview["per_step"]] == [("generate", 1)]
    assert overview["decisions_total"] == 1


def test_what_a_reviewer_may_not_see_is_not_counted(people):
    mine, others = paused(people, 2)
    others.assigned_groups.set([people.managers])
    review.approve(mine, people.bob)
    assert overview_context(Checkpoint.objects.for_user(people.bob))["pending_total"] == 0
    dave = overview_context(Checkpoint.objects.for_user(people.dave))
    assert dave["pending_total"] == 1 and dave["decisions_total"] == 0


def test_overdue_items_are_counted_per_step(people):
    late, on_time, _none = paused(people, 3)
    Checkpoint.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    Checkpoint.objects.filter(pk=on_time.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    overview = overview_context(Checkpoint.objects.for_user(people.bob))
    assert [(row["step"], row["count"], row["overdue"]) for row in overview["per_step"]] == [("generate", 3, 1)]
    assert overview["overdue_total"] == 1 and overview["pending_total"] == 3
