"""Who sees a checkpoint, read from its audience (the set of its assignees): kept true to the assignments.

The queue's visibility rule reads ``Checkpoint.audience`` (see :mod:`stepkit_django.audiences`); these
tests change assignments, groups and users every way the ORM allows and check that the queue shows what
the assignment tables say, at once.
"""

import random

import pytest
from django.contrib.auth.models import Group, User

from stepkit_django import Review, audiences, review, start, stepkit
from stepkit_django.exceptions import ReviewPermissionDenied
from stepkit_django.models import Audience, Checkpoint

pytestmark = pytest.mark.django_db

EMAIL = {"message": "m", "customer": "c", "to": "t@x"}


def paused(people):
    """A pending checkpoint of ``email-approval``, assigned to the group editors (bob and carol)."""
    return start("email-approval", EMAIL, user=people.alice).checkpoints.get()


def sees(user, cp):
    user = User.objects.get(pk=user.pk)  # fresh: no cached permissions or groups
    return Checkpoint.objects.for_user(user).filter(pk=cp.pk).exists()


def members(cp):
    audience = Checkpoint.objects.get(pk=cp.pk).audience
    if audience is None:
        return None
    return (
        sorted(audience.users.values_list("username", flat=True)),
        sorted(audience.groups.values_list("name", flat=True)),
    )


def test_a_checkpoint_points_at_the_audience_of_its_assignees(people):
    cp = paused(people)
    assert members(cp) == ([], ["editors"])  # the group, not its members
    other = paused(people)
    assert Checkpoint.objects.get(pk=other.pk).audience_id == Checkpoint.objects.get(pk=cp.pk).audience_id
    assert Audience.objects.count() == 1


def test_reassigning_moves_the_checkpoint_to_the_new_audience(people):
    cp = paused(people)
    assert sees(people.bob, cp) and not sees(people.dave, cp)
    review.reassign(cp, people.root, to_users=["dave"])
    assert members(cp) == (["dave"], [])
    assert not sees(people.bob, cp) and not sees(people.carol, cp)
    assert sees(people.dave, cp)
    with pytest.raises(ReviewPermissionDenied):
        review.claim(Checkpoint.objects.get(pk=cp.pk), people.bob)
    review.reassign(Checkpoint.objects.get(pk=cp.pk), people.root, to_groups=["managers", "editors"])
    assert members(cp) == ([], ["editors", "managers"])
    assert sees(people.bob, cp) and sees(people.dave, cp)


def test_joining_or_leaving_the_assigned_group_counts_at_once(people):
    cp = paused(people)
    zoe = User.objects.create_user("zoe")
    zoe.user_permissions.add(people.review_permission)
    assert not sees(zoe, cp)
    zoe.groups.add(people.editors)
    assert sees(zoe, cp)
    people.bob.groups.remove(people.editors)
    assert not sees(people.bob, cp)
    people.editors.user_set.remove(people.carol)  # from the group's side
    assert not sees(people.carol, cp)
    assert members(cp) == ([], ["editors"])  # the audience did not change: it holds the group


def test_a_user_removed_from_the_assignment_no_longer_sees_it(people):
    cp = paused(people)
    review.reassign(cp, people.root, to_users=["bob", "dave"])
    cp.assigned_users.remove(people.bob)
    assert not sees(people.bob, cp) and sees(people.dave, cp)
    assert members(cp) == (["dave"], [])


def test_assignments_changed_from_the_users_and_groups_side_move_the_audience(people):
    cp = paused(people)
    people.dave.stepkit_assigned_checkpoints.add(cp)
    assert sees(people.dave, cp) and sees(people.bob, cp)
    people.editors.stepkit_assigned_checkpoints.remove(cp)
    assert sees(people.dave, cp) and not sees(people.bob, cp)
    people.dave.stepkit_assigned_checkpoints.clear()
    # no assignee left: restricted (fail closed), not open to everyone
    assert members(cp) is None
    assert not any(sees(user, cp) for user in (people.bob, people.carol, people.dave))
    assert sees(people.grant_reassign("dave"), cp)  # a reassigner sees it, to fix it
    people.managers.stepkit_assigned_checkpoints.set([cp])
    assert members(cp) == ([], ["managers"])
    assert sees(people.dave, cp) and not sees(people.bob, cp)


def test_clearing_the_assignment_does_not_open_it_to_everyone(people):
    cp = paused(people)
    cp.assigned_groups.clear()
    assert Checkpoint.objects.get(pk=cp.pk).audience is None
    assert not sees(people.bob, cp) and not sees(people.dave, cp)


def test_a_stale_instance_saved_in_full_keeps_the_new_audience(people):
    cp = paused(people)
    stale = Checkpoint.objects.get(pk=cp.pk)
    review.reassign(cp, people.root, to_users=["dave"])
    stale.comment = "saved from an old copy"
    stale.save()
    assert members(cp) == (["dave"], [])
    assert not sees(people.bob, cp)


def test_quorum_groups_see_the_checkpoint_assigned_to_them(registered_pipelines, signers):
    registered_pipelines(
        stepkit("signed-audience")
        .step(
            "contract",
            lambda c: {"amount": 5000},
            review=Review(approvals_required={"legal": 1, "finance": 1}),  # assigned to those groups
        )
        .step("sign", lambda c: {"signed": True})
    )
    cp = start("signed-audience", {}, user=signers.alice).checkpoints.get()
    assert members(cp) == ([], ["finance", "legal"])
    assert all(sees(user, cp) for user in (signers.lena, signers.lars, signers.fiona, signers.bea))
    assert not sees(signers.bob, cp)
    review.approve(cp, signers.lena)
    assert sees(signers.fiona, cp)
    Group.objects.get(name="finance").user_set.remove(signers.fiona)
    assert not sees(signers.fiona, cp)


def test_a_deleted_assignees_id_given_to_a_new_user_opens_nothing(people):
    """Deleting a user removes them from the audiences as from the assignments; a new user who gets the
    same id (SQLite may reuse it) is not taken for them."""
    cp = paused(people)
    review.reassign(cp, people.root, to_users=["dave"])
    old_audience = Checkpoint.objects.get(pk=cp.pk).audience_id
    dave_id = people.dave.pk
    people.dave.delete()
    newcomer = User.objects.create_user("newcomer", pk=dave_id)
    newcomer.user_permissions.add(people.review_permission)
    assert not sees(newcomer, cp)  # the old checkpoint lost its assignee: restricted
    second = paused(people)
    review.reassign(second, people.root, to_users=["newcomer"])
    assert Checkpoint.objects.get(pk=second.pk).audience_id != old_audience  # the stale audience was retired
    assert sees(newcomer, second) and not sees(newcomer, cp)
    assert members(second) == (["newcomer"], [])


def _expected(user, reassigner):
    """The visibility rule as it was before audiences, read from the assignment tables (the reference)."""
    group_ids = set(user.groups.values_list("pk", flat=True))
    seen = set()
    for cp in Checkpoint.objects.prefetch_related("assigned_users", "assigned_groups"):
        user_ids = {u.pk for u in cp.assigned_users.all()}
        assigned_groups = {g.pk for g in cp.assigned_groups.all()}
        mine = user.pk in user_ids or bool(group_ids & assigned_groups)
        orphaned = reassigner and not user_ids and not assigned_groups
        if not cp.assigned or mine or orphaned:
            seen.add(cp.pk)
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_queue_matches_the_assignment_tables_after_any_change(people, seed):
    rng = random.Random(seed)
    extra = Group.objects.create(name="extra")
    users = [people.bob, people.carol, people.dave, people.eve]
    groups = [people.editors, people.managers, extra]
    checkpoints = [paused(people) for _ in range(4)]
    people.grant_reassign("carol")

    def some(items):
        return rng.sample(items, rng.randint(0, len(items)))

    operations = [
        lambda cp: cp.assigned_users.set(some(users)),
        lambda cp: cp.assigned_groups.set(some(groups)),
        lambda cp: cp.assigned_users.add(rng.choice(users)),
        lambda cp: cp.assigned_users.remove(rng.choice(users)),
        lambda cp: cp.assigned_groups.clear(),
        lambda cp: rng.choice(users).stepkit_assigned_checkpoints.add(cp),
        lambda cp: rng.choice(groups).stepkit_assigned_checkpoints.remove(cp),
        lambda cp: rng.choice(groups).stepkit_assigned_checkpoints.clear(),
        lambda cp: rng.choice(users).groups.set(some(groups)),
        lambda cp: rng.choice(groups).user_set.add(rng.choice(users)),
        lambda cp: review.reassign(
            Checkpoint.objects.get(pk=cp.pk), people.root, to_users=[u.username for u in some(users[:3])] or ["bob"]
        ),
        lambda cp: checkpoints.append(paused(people)),
    ]
    for _ in range(30):
        cp = Checkpoint.objects.get(pk=rng.choice(checkpoints).pk)
        rng.choice(operations)(cp)
        for user in users:
            fresh = User.objects.get(pk=user.pk)
            reassigner = fresh.has_perm("stepkit_django.reassign_checkpoint")
            assert set(Checkpoint.objects.visible_to(fresh).values_list("pk", flat=True)) == _expected(
                fresh, reassigner
            )
        for checkpoint in Checkpoint.objects.all():
            expected = audiences.key_of(
                checkpoint.assigned_users.values_list("pk", flat=True),
                checkpoint.assigned_groups.values_list("pk", flat=True),
            )
            if checkpoint.audience is None:
                assert not checkpoint.assigned_users.exists() and not checkpoint.assigned_groups.exists()
            else:
                assert checkpoint.audience.key == expected
