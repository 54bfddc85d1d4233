"""``Review(approvals_required={"legal": 1, "finance": 1})``: a per-group quorum."""

from datetime import timedelta

import pytest

from stepkit_django import Review, review, start, stepkit
from stepkit_django.exceptions import InvalidAssignment, ReviewConflict, ReviewPermissionDenied
from stepkit_django.models import Approval, AuditEvent, Checkpoint, PipelineRun
from stepkit_django.quorum import describe, progress_of
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db


def signed(**options):
    options = {"approvals_required": {"legal": 1, "finance": 1}, **options}
    return (
        stepkit("signed")
        .step("contract", lambda c: {"amount": 5000}, review=Review(**options))
        .step("sign", lambda c: {"signed": True})
    )


def paused(registered_pipelines, people, **options):
    registered_pipelines(signed(**options))
    return start("signed", {}, user=people.alice).checkpoints.get()


def fresh(cp):
    return Checkpoint.objects.get(pk=cp.pk)


def test_the_checkpoint_is_approved_once_every_group_has_its_count(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    assert describe(progress_of(cp)) == "legal 0/1 · finance 0/1"
    review.approve(cp, signers.lena)
    cp = fresh(cp)
    assert cp.status == CheckpointStatus.PENDING
    assert describe(progress_of(cp)) == "legal 1/1 · finance 0/1"
    review.approve(cp, signers.fiona)
    cp = fresh(cp)
    assert cp.status == CheckpointStatus.APPROVED
    assert PipelineRun.objects.get(pk=cp.run_id).status == RunStatus.COMPLETED
    assert list(Approval.objects.order_by("created_at").values_list("user__username", "group")) == [
        ("lena", "legal"),
        ("fiona", "finance"),
    ]
    assert [e.data["group"] for e in AuditEvent.objects.filter(action="approved").order_by("timestamp", "id")] == [
        "legal",
        "finance",
    ]


def test_two_approvals_from_one_group_do_not_make_up_for_the_other(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, approvals_required={"legal": 1, "finance": 1})
    review.approve(cp, signers.lena)
    before = (Approval.objects.count(), AuditEvent.objects.count(), fresh(cp).version)
    with pytest.raises(ReviewConflict, match=r"legal already gave the approvals it needs.*waits for finance"):
        review.approve(fresh(cp), signers.lars)
    assert (Approval.objects.count(), AuditEvent.objects.count(), fresh(cp).version) == before
    assert fresh(cp).status == CheckpointStatus.PENDING


def test_someone_in_none_of_the_groups_cannot_approve(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, assign_to_user="bob")
    with pytest.raises(ReviewPermissionDenied, match="needs approvals from legal, finance"):
        review.approve(cp, signers.bob)
    assert not Approval.objects.exists()
    # Rejecting stays open to any reviewer of the item.
    review.reject(cp, signers.bob, "Not this quarter")
    assert fresh(cp).status == CheckpointStatus.REJECTED


def test_a_member_of_both_groups_counts_once_toward_the_first_open_one(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    review.approve(cp, signers.bea)
    cp = fresh(cp)
    assert cp.status == CheckpointStatus.PENDING  # one person is one approval, not one per group
    assert describe(progress_of(cp)) == "legal 1/1 · finance 0/1"
    with pytest.raises(ReviewConflict, match="already approved"):
        review.approve(cp, signers.bea)
    review.approve(cp, signers.fiona)
    assert fresh(cp).status == CheckpointStatus.APPROVED


def test_a_member_of_both_groups_fills_the_group_still_open(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    review.approve(cp, signers.lena)
    review.approve(fresh(cp), signers.bea)
    assert Approval.objects.get(user=signers.bea).group == "finance"
    assert fresh(cp).status == CheckpointStatus.APPROVED


def test_counts_above_one_need_that_many_distinct_members(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, approvals_required={"legal": 2, "finance": 1})
    assert cp.approvals_required == 3
    review.approve(cp, signers.fiona)
    review.approve(fresh(cp), signers.lena)
    assert fresh(cp).status == CheckpointStatus.PENDING
    assert describe(progress_of(fresh(cp))) == "legal 1/2 · finance 1/1"
    review.approve(fresh(cp), signers.lars)
    assert fresh(cp).status == CheckpointStatus.APPROVED


def test_an_edit_voids_the_approvals_and_every_count_starts_again(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, editable=["amount"])
    review.approve(cp, signers.lena)
    # lars is in legal, whose count was met; his edit voids lena's approval, so his own counts for legal.
    review.approve(fresh(cp), signers.lars, override_data={"amount": 4000})
    cp = fresh(cp)
    assert list(cp.approvals.values_list("user__username", "group")) == [("lars", "legal")]
    assert describe(progress_of(cp)) == "legal 1/1 · finance 0/1"
    review.approve(cp, signers.fiona)
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert run.status == RunStatus.COMPLETED and run.context["amount"] == 4000


def test_the_item_goes_to_the_quorum_groups(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    assert sorted(cp.assigned_groups.values_list("name", flat=True)) == ["finance", "legal"]
    assert Checkpoint.objects.pending().for_user(signers.lena).filter(pk=cp.pk).exists()
    assert not Checkpoint.objects.pending().for_user(signers.bob).filter(pk=cp.pk).exists()


def test_declared_users_are_assigned_besides_the_groups(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, assign_to_user="bea")
    assert sorted(cp.assigned_groups.values_list("name", flat=True)) == ["finance", "legal"]
    assert list(cp.assigned_users.values_list("username", flat=True)) == ["bea"]


def test_other_groups_cannot_be_assigned_with_a_group_quorum():
    with pytest.raises(ValueError, match="cannot be combined with approvals from named"):
        Review(approvals_required={"legal": 1}, assign_to_group="editors")


def test_a_group_that_does_not_exist_fails_the_run_loudly(registered_pipelines, signers):
    registered_pipelines(signed(approvals_required={"legal": 1, "treasury": 1}))
    run = start("signed", {}, user=signers.alice)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "needs approvals from group(s) 'treasury', which do not exist" in run.error
    assert not Checkpoint.objects.exists()


def test_reassigning_to_someone_outside_the_groups_is_refused(registered_pipelines, signers):
    manager = signers.root
    cp = paused(registered_pipelines, signers)
    with pytest.raises(InvalidAssignment) as refused:
        review.reassign(cp, manager, to_users=["bob"])
    assert "bob is in none of the groups whose approvals this item needs (legal, finance)" in str(
        refused.value.errors["to_users"]
    )
    review.reassign(fresh(cp), manager, to_users=["lena", "fiona"])
    assert sorted(fresh(cp).assigned_users.values_list("username", flat=True)) == ["fiona", "lena"]


@pytest.mark.parametrize(
    ("to_users", "to_groups"),
    [([], ["editors"]), (["lena"], []), (["lena", "lars"], [])],
)
def test_a_reassignment_that_leaves_a_group_unable_to_approve_is_refused(
    registered_pipelines, signers, to_users, to_groups
):
    cp = paused(registered_pipelines, signers, timeout=timedelta(hours=1), on_timeout="approve")
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count())
    with pytest.raises(InvalidAssignment) as refused:
        review.reassign(cp, signers.root, to_users=to_users, to_groups=to_groups)
    (message,) = refused.value.errors["__all__"]
    assert "too few can give the approvals still needed from" in message and "finance" in message
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_a_reassignment_counts_who_approved_and_who_reassigns(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    review.approve(cp, signers.fiona)  # finance is met; legal still needs one
    lena = signers.grant_reassign("lena")  # she reassigns, so she may not approve: lars must remain
    with pytest.raises(InvalidAssignment, match="legal"):
        review.reassign(fresh(cp), lena, to_users=["lena"])
    review.reassign(fresh(cp), lena, to_groups=["legal"])  # lars can still approve: accepted
    review.approve(fresh(cp), signers.lars)
    assert fresh(cp).status == CheckpointStatus.APPROVED


def test_review_next_does_not_hand_the_item_to_someone_whose_group_has_approved(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    review.approve(cp, signers.lena)
    assert review.claim_next(signers.lars) is None  # legal's count is met: he could only hold it up
    assert review.claim_next(signers.fiona).pk == cp.pk


def test_damaged_stored_rules_refuse_approvals_and_keep_the_queue_working(registered_pipelines, signers, client):
    cp = paused(registered_pipelines, signers)
    Checkpoint.objects.filter(pk=cp.pk).update(review={**cp.review, "approvals_by_group": {"legal": 1}})
    with pytest.raises(ReviewConflict, match="damaged"):
        review.approve(fresh(cp), signers.lena)
    assert not Approval.objects.exists()
    signers.lena.is_staff = True
    signers.lena.save(update_fields=["is_staff"])
    client.force_login(signers.lena)
    assert client.get("/admin/stepkit_django/checkpoint/").status_code == 200
    assert client.get(f"/admin/stepkit_django/checkpoint/{cp.pk}/change/").status_code == 200


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({}, ValueError, "at least one group"),
        ({"legal": 0}, ValueError, "'legal' needs a whole number"),
        ({"legal": True}, ValueError, "'legal' needs a whole number"),
        ({"": 1}, TypeError, "is not a group name"),
        ({3: 1}, TypeError, "is not a group name"),
        ("legal", TypeError, "integer or a mapping"),
    ],
)
def test_a_malformed_quorum_fails_at_declaration(value, error, match):
    with pytest.raises(error, match=match):
        Review(approvals_required=value)


def test_escalation_cannot_be_combined_with_a_group_quorum():
    with pytest.raises(ValueError, match="cannot be combined with approvals from named groups"):
        Review(approvals_required={"legal": 1}, on_timeout="escalate", escalate_to_group="managers")


def test_four_eyes_still_applies_to_a_group_member_who_started_the_run(registered_pipelines, signers):
    registered_pipelines(signed())
    cp = start("signed", {}, user=signers.lena).checkpoints.get()
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, signers.lena)


def test_the_snapshot_keeps_the_order_of_the_groups(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers, approvals_required={"finance": 1, "legal": 2})
    assert cp.approvals_by_group == [("finance", 1), ("legal", 2)]
