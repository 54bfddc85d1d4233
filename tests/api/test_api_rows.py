"""The API's serializer-free representations equal the serializers that document them."""

import json
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from stepkit_django import Review, review, start, stepkit
from stepkit_django.api import rows
from stepkit_django.api.serializers import CheckpointDetailSerializer, CheckpointSerializer
from stepkit_django.models import Checkpoint, approvals_count

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}


def rendered(data):
    return json.loads(JSONRenderer().render(data))


def by_serializer(cp, user=None):
    fresh = Checkpoint.objects.select_related("claimed_by", "decided_by").get(pk=cp.pk)
    return rendered(CheckpointDetailSerializer(fresh, context={"request": SimpleNamespace(user=user)}).data)


def by_rows(cp, user=None):
    return rendered(rows.detail(Checkpoint.objects.get(pk=cp.pk), user))


@pytest.fixture
def quorum(registered_pipelines):
    registered_pipelines(
        stepkit("two-approvals").step(
            "draft", lambda c: {"text": "draft"}, review=Review(title="Two of you", approvals_required=2)
        )
    )


def test_detail_matches_the_serializer_through_a_review(people, quorum):
    cp = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    assert by_rows(cp) == by_serializer(cp)  # pending, assigned to a group, with a schema
    review.claim(cp, people.bob)
    assert by_rows(cp)["claimed_by"] == {"id": people.bob.pk, "username": "bob"}
    assert by_rows(cp) == by_serializer(cp)
    review.edit(cp, people.bob, {"body": "Edited"})
    assert by_rows(cp) == by_serializer(cp)
    review.release(cp, people.bob)
    review.reassign(cp, people.root, to_users=[people.carol])
    assert by_rows(cp)["assigned_users"] == [{"id": people.carol.pk, "username": "carol"}]
    assert by_rows(cp) == by_serializer(cp)
    review.reject(cp, people.carol, comment="no")
    assert by_rows(cp)["decided_by"]["username"] == "carol" and by_rows(cp)["comment"] == "no"
    assert by_rows(cp) == by_serializer(cp)

    two = start("two-approvals", {}, user=people.alice).checkpoints.get()
    review.approve(two, people.bob)
    assert by_rows(two)["approvals_count"] == 1 and by_rows(two)["status"] == "pending"
    assert by_rows(two) == by_serializer(two)
    review.approve(two, people.carol)
    assert [a["user"]["username"] for a in by_rows(two)["approvals"]] == ["bob", "carol"]
    assert by_rows(two) == by_serializer(two)


def test_detail_matches_the_serializer_with_revisions(people, registered_pipelines):
    registered_pipelines(
        stepkit("redrafts").step(
            "draft", lambda c: {"body": f"Take {(c.get('review') or {}).get('revision', 0)}"}, review=Review()
        )
    )
    first = start("redrafts", {}, user=people.alice).checkpoints.get()
    review.request_changes(first, people.bob, "Again")
    review.request_changes(Checkpoint.objects.get(status="pending"), people.bob, "Once more")
    third = Checkpoint.objects.get(status="pending")
    revisions = by_rows(third, people.bob)["revisions"]
    assert [(r["revision"], r["changes"]) for r in revisions] == [
        (1, {"body": {"before": "Take 0", "after": "Take 1"}}),
        (2, {"body": {"before": "Take 1", "after": "Take 2"}}),
    ]
    assert by_rows(third, people.bob) == by_serializer(third, people.bob)
    assert by_rows(third)["revisions"] == by_serializer(third)["revisions"] == []  # nobody: nothing to see


def test_queue_rows_match_the_serializer(people, quorum):
    start("email-approval", EMAIL, user=people.alice)
    claimed = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    review.claim(claimed, people.bob)
    review.approve(start("two-approvals", {}, user=people.alice).checkpoints.get(), people.bob)
    queryset = Checkpoint.objects.annotate(approvals_total=approvals_count()).order_by("created_at")
    expected = rendered(CheckpointSerializer(queryset, many=True).data)
    assert rendered(rows.queue_rows(list(queryset.values(*rows.QUEUE_FIELDS)))) == expected
    assert len(expected) == 3


def detail_queries(cp):
    cp = Checkpoint.objects.get(pk=cp.pk)
    with CaptureQueriesContext(connection) as queries:
        rows.detail(cp, None)
    return [q["sql"] for q in queries.captured_queries]


def assignment_queries(cp):
    return [sql for sql in detail_queries(cp) if "_assigned_" in sql]


def test_detail_reads_assignments_only_for_a_checkpoint_that_may_have_some(people, registered_pipelines):
    registered_pipelines(stepkit("open").step("s", lambda c: {"n": 1}, review=Review()))
    unassigned = start("open", {}, user=people.alice).checkpoints.get()
    assert detail_queries(unassigned) == []  # no assignments, and no approvals before the first one decides it
    assert by_rows(unassigned) == by_serializer(unassigned)
    assigned = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    assert len(assignment_queries(assigned)) == 2
    # An assignment made later, through the ORM, is seen (the column is kept up to date).
    unassigned.assigned_users.add(people.dave)
    assert len(assignment_queries(unassigned)) == 2
    assert by_rows(unassigned)["assigned_users"] == [{"id": people.dave.pk, "username": "dave"}]


def test_rows_match_the_serializer_with_a_per_group_quorum(signers, registered_pipelines):
    registered_pipelines(
        stepkit("signed").step(
            "contract", lambda c: {"n": 1}, review=Review(approvals_required={"legal": 1, "finance": 1})
        )
    )
    cp = start("signed", {}, user=signers.alice).checkpoints.get()
    start("email-approval", EMAIL, user=signers.alice)  # a plain count on the same page
    review.approve(cp, signers.lena)
    assert by_rows(cp)["approvals_by_group"] == [
        {"group": "legal", "given": 1, "required": 1, "met": True},
        {"group": "finance", "given": 0, "required": 1, "met": False},
    ]
    assert by_rows(cp)["approvals"][0]["group"] == "legal"
    assert by_rows(cp) == by_serializer(cp)
    queryset = Checkpoint.objects.annotate(approvals_total=approvals_count()).order_by("created_at")
    listed = rendered(rows.queue_rows(list(queryset.values(*rows.QUEUE_FIELDS))))
    assert listed == rendered(CheckpointSerializer(queryset, many=True).data)
    assert [row["approvals_by_group"] for row in listed][1] == []
