"""Visibility when ``Checkpoint.audience`` and the summary of pending counts drift from the assignment rows.

The audience is derived from the assignment tables; a checkpoint whose audience is missing (not yet
backfilled, written by old code or a bulk path) or stale (assignment rows written without
``m2m_changed``) must not be shown to someone the assignment rows do not let in: the list, the detail and
the count fail closed, and ``stepkit_refresh_audiences`` repairs it.
"""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from stepkit_django import pending_counts, permissions, review, start
from stepkit_django.models import Checkpoint, PendingCount

EMAIL = {"message": "m", "customer": "c", "to": "t@x"}
Users = Checkpoint.assigned_users.through
Groups = Checkpoint.assigned_groups.through


def fresh(user):
    return User.objects.get(pk=user.pk)


def listed(user, checkpoint):
    return Checkpoint.objects.for_user(fresh(user)).filter(pk=checkpoint.pk).exists()


def api(user):
    client = APIClient()
    client.force_authenticate(fresh(user))
    return client


def detail(user, checkpoint):
    return api(user).get(f"/api/stepkit/checkpoints/{checkpoint.pk}/").status_code


def assigned_without_audience(people, *users):
    """A pending checkpoint assigned to ``users`` whose audience is NULL (as before 0018's backfill)."""
    checkpoint = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    Groups.objects.filter(checkpoint_id=checkpoint.pk).delete()
    Users.objects.bulk_create([Users(checkpoint_id=checkpoint.pk, user_id=u.pk) for u in users])
    Checkpoint.objects.filter(pk=checkpoint.pk).update(audience=None)
    return Checkpoint.objects.get(pk=checkpoint.pk)


@pytest.mark.django_db
def test_a_reassigner_does_not_list_a_checkpoint_with_assignees_but_no_audience(people):
    checkpoint = assigned_without_audience(people, people.dave)
    people.grant_reassign("carol")
    assert checkpoint.assigned and checkpoint.audience_id is None
    assert not permissions.can_reassign(checkpoint, fresh(people.carol), [])
    assert not listed(people.carol, checkpoint)
    assert detail(people.carol, checkpoint) == 404
    # the reviewer it is assigned to does not see it either until the audience is refreshed (fail closed)
    assert not listed(people.dave, checkpoint)
    call_command("stepkit_refresh_audiences", stdout=StringIO())
    assert listed(people.dave, checkpoint)
    assert not listed(people.carol, checkpoint)


@pytest.mark.django_db
def test_a_reassigner_still_lists_a_true_orphan(people):
    checkpoint = assigned_without_audience(people)  # assigned, no assignment row, no audience
    people.grant_reassign("carol")
    assert permissions.can_reassign(checkpoint, fresh(people.carol), [])
    assert listed(people.carol, checkpoint)
    assert not listed(people.bob, checkpoint)


@pytest.mark.django_db
def test_the_summary_does_not_count_a_checkpoint_with_assignees_for_a_reassigner(people):
    if not pending_counts.summary_kept():
        pytest.skip("the summary is kept on PostgreSQL")
    assigned_without_audience(people, people.dave)
    assigned_without_audience(people)
    carol = fresh(people.grant_reassign("carol"))
    assert pending_counts.queue_count(carol) == Checkpoint.objects.for_user(carol).pending().count()


@pytest.mark.django_db
def test_a_removed_assignee_loses_a_stale_checkpoint_after_the_refresh(people):
    checkpoint = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    review.reassign(checkpoint, people.root, to_users=["dave"])
    Users.objects.filter(checkpoint_id=checkpoint.pk).delete()  # no m2m_changed
    Users.objects.create(checkpoint_id=checkpoint.pk, user_id=people.bob.pk)
    assert not permissions.can_review(Checkpoint.objects.get(pk=checkpoint.pk), fresh(people.dave))
    out = StringIO()
    call_command("stepkit_refresh_audiences", "--batch-size", "1", stdout=out)
    assert "1" in out.getvalue()
    assert not listed(people.dave, checkpoint)
    assert listed(people.bob, checkpoint)
    assert detail(people.bob, checkpoint) == 200
    out = StringIO()
    call_command("stepkit_refresh_audiences", stdout=out)
    assert "0 checkpoint" in out.getvalue()


def summary_pg():
    if not pending_counts.summary_kept():
        pytest.skip("the summary is kept on PostgreSQL")


@pytest.mark.django_db
def test_a_negative_summary_is_not_a_500_and_the_rebuild_repairs_it(people):
    summary_pg()
    for _ in range(3):
        start("email-approval", EMAIL, user=people.alice)
    PendingCount.objects.update(pending=-5)
    bob = fresh(people.bob)
    assert pending_counts.queue_count(bob) is None
    response = api(bob).get("/api/stepkit/checkpoints/?status=pending")
    assert response.status_code == 200 and response.json()["count"] == 3
    out = StringIO()
    call_command("stepkit_rebuild_pending_counts", stdout=out)
    assert "rebuilt" in out.getvalue()
    assert pending_counts.queue_count(bob) == 3


@pytest.mark.django_db
def test_an_undercounting_summary_does_not_hide_items(people):
    summary_pg()
    for _ in range(3):
        start("email-approval", EMAIL, user=people.alice)
    PendingCount.objects.update(pending=0)
    PendingCount.objects.filter(pk=PendingCount.objects.first().pk).update(pending=1)
    response = api(people.bob).get("/api/stepkit/checkpoints/?status=pending&page_size=2")
    assert response.json()["count"] == 3 and response.json()["next"]


@pytest.mark.django_db
def test_truncating_the_checkpoints_empties_the_summary(people):
    summary_pg()
    for _ in range(3):
        start("email-approval", EMAIL, user=people.alice)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE stepkit_django_checkpoint CASCADE")
    assert not PendingCount.objects.filter(pending__gt=0).exists()
    assert pending_counts.queue_count(fresh(people.bob)) == 0


def test_the_audience_key_takes_any_primary_key_in_a_fixed_order():
    import uuid

    from stepkit_django.audiences import key_of

    first, second = uuid.uuid4(), uuid.uuid4()
    assert key_of([first, second], []) == key_of([str(second), first], [])
    assert key_of(["alice@example.com"], []) != key_of(["bob@example.com"], [])
    assert key_of([1], []) != key_of([], [1])
    assert key_of([10, 9], [2]) == key_of(["9", 10], ["2"])


@pytest.mark.django_db
def test_a_pause_assigned_to_users_and_groups_creates_one_audience(people):
    from stepkit_django import audiences
    from stepkit_django.models import Audience

    checkpoint = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    before = Audience.objects.count()
    audiences.assign_new(checkpoint, [people.dave, people.dave], [people.managers])  # beside editors
    assert Audience.objects.count() == before + 1
    assert listed(people.dave, checkpoint) and listed(people.bob, checkpoint)


@pytest.mark.django_db
def test_the_refresh_refuses_a_batch_size_below_one():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        call_command("stepkit_refresh_audiences", "--batch-size", "0", stdout=StringIO())
