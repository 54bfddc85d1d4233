"""A change of both assignment tables computes one audience, for the final assignees.

A reassignment replaces the users, then the groups: computed after each, the first audience would be
the intermediate state's (the new users with the old groups), a row no checkpoint keeps, and the
summary of pending counts would count the checkpoint there for a moment. ``audiences.assign`` and
``audiences.deferred`` compute it once; ``audiences.remove_unused`` deletes what is left unused.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from stepkit_django import Review, audiences, pending_counts, review, start, stepkit
from stepkit_django.models import Audience, Checkpoint, PendingCount

pytestmark = pytest.mark.django_db

EMAIL = {"message": "m", "customer": "c", "to": "t@x"}


def paused(people):
    """A pending checkpoint of ``email-approval``, assigned to the group editors."""
    return start("email-approval", EMAIL, user=people.alice).checkpoints.get()


def audience_ids():
    return set(Audience.objects.values_list("pk", flat=True))


def audience_of(cp):
    return Checkpoint.objects.get(pk=cp.pk).audience_id


def members(audience_id):
    audience = Audience.objects.get(pk=audience_id)
    return (
        sorted(audience.users.values_list("username", flat=True)),
        sorted(audience.groups.values_list("name", flat=True)),
    )


def test_a_reassignment_creates_only_the_final_audience(people):
    cp = paused(people)
    before = audience_ids()
    moved = review.reassign(cp, people.root, to_users=["dave"], to_groups=["managers"])
    created = audience_ids() - before
    # not also the intermediate (dave, editors): one new row, the final one, where the checkpoint points
    assert created == {audience_of(cp)} and moved.audience_id == audience_of(cp)
    assert members(audience_of(cp)) == (["dave"], ["managers"])


def test_reassigning_to_users_only_creates_no_audience_of_the_old_groups(people):
    cp = paused(people)
    old = audience_of(cp)
    review.reassign(cp, people.root, to_users=["bob", "dave"])
    assert audience_ids() == {old, audience_of(cp)}
    assert members(audience_of(cp)) == (["bob", "dave"], [])


def test_an_escalation_creates_only_the_escalation_groups_audience(people, registered_pipelines):
    registered_pipelines(
        stepkit("timed-escalate").step(
            "draft",
            lambda c: {"draft": "text"},
            review=Review(
                timeout=timedelta(days=2),
                on_timeout="escalate",
                assign_to_group="editors",
                escalate_to_group="managers",
            ),
        )
    )
    cp = start("timed-escalate", {}, user=people.alice).checkpoints.get()
    review.reassign(cp, people.root, to_users=["bob"], to_groups=["editors"])
    before = audience_ids()
    assert review.expire_due(now=cp.expires_at + timedelta(seconds=1)) == 1
    created = audience_ids() - before
    assert created == {audience_of(cp)} and members(audience_of(cp)) == ([], ["managers"])


def test_changes_inside_deferred_compute_one_audience_when_the_block_ends(people):
    cp = paused(people)
    old = audience_of(cp)
    before = audience_ids()
    with audiences.deferred():
        people.dave.stepkit_assigned_checkpoints.add(cp)  # from the users' side
        cp.assigned_groups.remove(people.editors)
        cp.assigned_users.add(people.bob)
        with audiences.deferred():  # nested: computed when the outermost ends
            cp.assigned_groups.add(people.managers)
        assert audience_of(cp) == old  # not yet
    assert audience_ids() - before == {audience_of(cp)}
    assert members(audience_of(cp)) == (["bob", "dave"], ["managers"])
    assert cp.audience_id == audience_of(cp)


def test_a_deferred_block_that_raises_changes_nothing(people):
    cp = paused(people)
    old, before = audience_of(cp), audience_ids()
    with pytest.raises(RuntimeError), audiences.deferred():
        cp.assigned_users.set([people.dave])
        raise RuntimeError("abandoned")
    assert audience_of(cp) == old and audience_ids() == before
    assert list(cp.assigned_users.all()) == []


def test_assign_repairs_a_drifted_audience_even_when_the_sets_do_not_change(people):
    cp = paused(people)
    old = audience_of(cp)
    Checkpoint.objects.filter(pk=cp.pk).update(audience=None)  # drifted (raw SQL, old code)
    audiences.assign(cp, [], [people.editors])
    assert audience_of(cp) == old


@pytest.mark.postgres
def test_the_summary_counts_after_reassignments_and_only_the_audiences_used(people):
    first, second = paused(people), paused(people)
    old = audience_of(first)
    review.reassign(first, people.root, to_users=["dave"], to_groups=["managers"])
    review.reassign(second, people.root, to_users=["bob"])
    used = {old, audience_of(first), audience_of(second)}
    keyed = {pk for pk in PendingCount.objects.values_list("audience_id", flat=True) if pk}
    assert keyed <= used  # the summary never counted them under an intermediate audience
    for audience_id in used:
        summary = PendingCount.objects.filter(audience_id=audience_id).aggregate(n=Sum("pending"))["n"] or 0
        assert summary == Checkpoint.objects.pending().filter(audience_id=audience_id).count()
    for user in (people.bob, people.carol, people.dave):
        fresh = type(user).objects.get(pk=user.pk)
        assert pending_counts.queue_count(fresh) == Checkpoint.objects.for_user(fresh).pending().count()


def test_remove_unused_deletes_the_audiences_no_checkpoint_points_at(people):
    first, second = paused(people), paused(people)
    editors = audience_of(first)
    review.reassign(first, people.root, to_users=["dave"])
    assert audience_ids() == {editors, audience_of(first)}
    assert audiences.remove_unused() == 0  # the second checkpoint still points at the editors' audience
    review.reassign(second, people.root, to_users=["dave"])
    assert audiences.remove_unused(batch_size=1) == 1
    assert audience_ids() == {audience_of(first)} == {audience_of(second)}
    assert not PendingCount.objects.filter(audience_id=editors).exists()
    # the next checkpoint assigned to the editors gets a new audience, and the queue shows it to them
    third = paused(people)
    assert members(audience_of(third)) == ([], ["editors"])
    assert Checkpoint.objects.for_user(people.bob).filter(pk=third.pk).exists()


def test_the_refresh_command_removes_unused_audiences_when_asked(people):
    cp = paused(people)
    review.reassign(cp, people.root, to_users=["dave"])
    out = StringIO()
    call_command("stepkit_refresh_audiences", stdout=out)
    assert len(audience_ids()) == 2 and "removed" not in out.getvalue()
    call_command("stepkit_refresh_audiences", "--remove-unused", stdout=out)
    assert audience_ids() == {audience_of(cp)}
    assert "1 unused audience(s) removed." in out.getvalue()


def test_a_reassigner_lists_and_counts_both_kinds_of_orphans_and_nothing_else(people):
    """Orphans without an audience (their assignments cleared) and with an emptied one (its only group
    deleted), counted part by part and listed through subqueries: the same set, by every path."""
    from django.contrib.auth.models import Group, User

    from stepkit_django import permissions

    cleared, emptied, assigned, stale = paused(people), paused(people), paused(people), paused(people)
    cleared.assigned_groups.clear()  # no assignee left, no audience
    gone = Group.objects.create(name="gone")
    review.reassign(emptied, people.root, to_groups=["gone"])
    gone.delete()  # its audience is left with no member
    Checkpoint.objects.filter(pk=stale.pk).update(audience=None)  # drifted, but still has assignees
    carol = User.objects.get(pk=people.grant_reassign("carol").pk)
    pending = Checkpoint.objects.pending()
    expected = {cleared.pk, emptied.pk}
    assert set(permissions.orphans_for(pending, carol).values_list("pk", flat=True)) == expected
    assert permissions.count_orphans(pending, carol) == 2
    listed = set(Checkpoint.objects.for_user(carol).values_list("pk", flat=True))
    assert expected | {assigned.pk} <= listed and stale.pk not in listed
    bob = User.objects.get(pk=people.bob.pk)  # no reassign permission: no orphans
    assert permissions.count_orphans(pending, bob) == 0
    assert not expected & set(Checkpoint.objects.for_user(bob).values_list("pk", flat=True))
