"""The queue's count from the summary of pending checkpoints (PostgreSQL's trigger) equals the real count.

Random changes of every kind a checkpoint goes through (created, claimed, approved, rejected, reassigned,
assignments and group memberships changed from either side, runs cancelled, a bulk ``update()``), each
followed by the count of every user's queue, whole and by pipeline and step, from the summary and from
the checkpoints.
"""

import contextlib
import random

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.models import F

from stepkit_django import pending_counts, review, start
from stepkit_django.exceptions import StepkitError
from stepkit_django.models import Checkpoint, PendingCount
from stepkit_django.status import CheckpointStatus

pytestmark = pytest.mark.django_db

EMAIL = {"message": "m", "customer": "c", "to": "t@x"}
API = "/api/stepkit"
QUEUE = "/admin/stepkit_django/checkpoint/"
VIEWS = [(None, None), ("email-approval", None), ("email-approval", "generate"), ("payment-approval", "check")]


def real(user, pipeline, step):
    queue = Checkpoint.objects.for_user(user).pending()
    if pipeline is not None:
        queue = queue.filter(pipeline_name=pipeline)
    if step is not None:
        queue = queue.filter(step=step)
    return queue.count()


def assert_counts_match(users):
    for user in users:
        fresh = User.objects.get(pk=user.pk)
        for pipeline, step in VIEWS:
            assert pending_counts.queue_count(fresh, pipeline, step) == real(fresh, pipeline, step), (
                fresh.username,
                pipeline,
                step,
            )


def new_checkpoint(people, rng):
    starter = rng.choice([people.alice, people.dave])
    if rng.random() < 0.5:
        return start("email-approval", EMAIL, user=starter).checkpoints.get()
    return start("payment-approval", {"amount": 5000}, user=starter).checkpoints.get()  # assigned to nobody


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_summary_count_equals_the_real_count_after_any_change(people, seed):
    rng = random.Random(seed)
    extra = Group.objects.create(name="extra")
    reviewers = [people.bob, people.carol, people.dave]
    groups = [people.editors, people.managers, extra]
    people.grant_reassign("carol")
    everyone = [people.alice, *reviewers, people.eve, people.root]
    created = [new_checkpoint(people, rng) for _ in range(4)]

    def pending():
        return list(Checkpoint.objects.filter(pk__in=[cp.pk for cp in created], status=CheckpointStatus.PENDING))

    def some(items):
        return rng.sample(items, rng.randint(0, len(items)))

    operations = {
        "create": lambda cp: created.append(new_checkpoint(people, rng)),
        "claim": lambda cp: review.claim(cp, rng.choice(reviewers)),
        "approve": lambda cp: review.approve(cp, rng.choice([*reviewers, people.root])),
        "reject": lambda cp: review.reject(cp, rng.choice([*reviewers, people.root]), comment="no"),
        "reassign": lambda cp: review.reassign(
            cp, people.root, to_users=[u.username for u in some(reviewers)] or ["bob"]
        ),
        "assign a group": lambda cp: cp.assigned_groups.set(some(groups)),
        "assign a user": lambda cp: rng.choice(reviewers).stepkit_assigned_checkpoints.add(cp),
        "unassign a user": lambda cp: cp.assigned_users.remove(rng.choice(reviewers)),
        "clear the groups": lambda cp: rng.choice(groups).stepkit_assigned_checkpoints.clear(),
        "join a group": lambda cp: rng.choice(groups).user_set.add(rng.choice(everyone[:-1])),
        "leave a group": lambda cp: rng.choice(reviewers).groups.remove(rng.choice(groups)),
        "cancel the run": lambda cp: review.cancel_run(cp.run, people.root),
        "bulk update": lambda cp: Checkpoint.objects.filter(pk=cp.pk).update(
            status=rng.choice([CheckpointStatus.EXPIRED, CheckpointStatus.PENDING]), version=F("version") + 1
        ),
    }
    names = sorted(operations)
    for _ in range(40):
        name = rng.choice(names)
        candidates = pending() or [Checkpoint.objects.get(pk=created[-1].pk)]
        with contextlib.suppress(StepkitError):  # refused (four eyes, claimed by another): the counts still match
            operations[name](rng.choice(candidates))
        assert_counts_match(everyone)
    assert PendingCount.objects.exists()


@pytest.mark.postgres
def test_the_api_and_the_admin_count_the_default_views_from_the_summary(people, client, monkeypatch):
    monkeypatch.setattr(pending_counts, "EXACT_BELOW", 0)  # a queue this small is otherwise counted exactly
    for _ in range(3):
        start("email-approval", EMAIL, user=people.alice)
    start("payment-approval", {"amount": 5000}, user=people.alice)
    # A wrong summary shows in the counts the summary answers, not in the others.
    one = PendingCount.objects.filter(pipeline_name="email-approval", audience_id__gt=0, pending__gt=0).first()
    PendingCount.objects.filter(pk=one.pk).update(pending=F("pending") + 100)
    people.bob.is_staff = True
    people.bob.save()
    client.force_login(people.bob)
    api = client.get(f"{API}/checkpoints/?status=pending").json()
    assert api["count"] == 104 and len(api["results"]) == 4
    assert client.get(f"{API}/checkpoints/?status=pending&pipeline=email-approval").json()["count"] == 103
    assert client.get(f"{API}/checkpoints/?status=pending&unclaimed=true").json()["count"] == 4  # counted
    assert client.get(f"{API}/checkpoints/").json()["count"] == 4  # every status: counted
    page = client.get(QUEUE).content.decode()
    assert "104 review items" in page
    assert "4 review items" in client.get(QUEUE + "?q=m").content.decode()  # a search: counted


def test_the_summary_answers_on_postgresql_and_other_databases_count_the_queue(people):
    start("email-approval", EMAIL, user=people.alice)
    inactive = User.objects.create_user("gone", is_active=False)
    if connection.vendor == "postgresql":
        assert pending_counts.queue_count(people.bob) == 1 == real(people.bob, None, None)
        assert pending_counts.queue_count(inactive) == 0
    else:
        assert pending_counts.queue_count(people.bob) is None
        assert not PendingCount.objects.exists()  # no trigger: nothing keeps it
