"""Decisions that cannot be gamed: each test is a way an insider could get past a review, closed."""

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from stepkit_django import (
    IllegalTransition,
    InvalidAssignment,
    Review,
    ReviewConflict,
    ReviewExpired,
    ReviewPermissionDenied,
    review,
    start,
    stepkit,
)
from stepkit_django.execution.runner import advance
from stepkit_django.models import Approval, AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from stepkit_django.transitions import move_run

pytestmark = pytest.mark.django_db

API = "/api/stepkit"


def two_keys(registered_pipelines, applied, **review_options):
    """A change that needs two approvers; ``applied`` records what the run went on with."""
    options = {"approvals_required": 2, "editable": ["change"], **review_options}
    registered_pipelines(
        stepkit("two-keys")
        .step("stage", lambda c: {"change": "X"}, review=Review(**options))
        .step("apply", lambda c: applied.append(c["change"]) or {"applied": True})
    )


def state():
    return (
        list(Checkpoint.objects.values()),
        list(PipelineRun.objects.values()),
        AuditEvent.objects.count(),
        Approval.objects.count(),
    )


# -- 1. an approval attests to exactly the data it saw ---------------------------------------


def test_approving_with_changed_data_voids_the_earlier_approval(people, registered_pipelines):
    applied = []
    two_keys(registered_pipelines, applied)
    run = start("two-keys", {}, user=people.alice)
    cp = review.approve(run.checkpoints.get(), people.bob)  # bob approves X
    cp = review.approve(cp, people.carol, override_data={"change": "Y"})  # carol approves Y
    run.refresh_from_db()
    assert cp.status == CheckpointStatus.PENDING and run.status == RunStatus.PAUSED and applied == []
    assert list(cp.approvals.values_list("user__username", flat=True)) == ["carol"]
    voided = cp.events.get(action="approvals_voided")
    assert voided.data["voided"] == ["bob"] and voided.data["changed"] == ["change"] and voided.actor == people.carol
    # bob may approve again, now of Y: the quorum is two people who saw Y
    review.approve(cp, people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and applied == ["Y"]


def test_an_edit_voids_the_approvals_given_before_it(people, registered_pipelines):
    applied = []
    two_keys(registered_pipelines, applied)
    run = start("two-keys", {}, user=people.alice)
    cp = review.approve(run.checkpoints.get(), people.bob)
    cp = review.edit(cp, people.carol, {"change": "Y"})
    assert not cp.approvals.exists()
    cp = review.approve(cp, people.carol)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and applied == []  # one approval of Y so far


def test_an_edit_that_changes_no_value_is_no_change(people, registered_pipelines):
    two_keys(registered_pipelines, [])
    run = start("two-keys", {}, user=people.alice)
    cp = review.approve(run.checkpoints.get(), people.bob)
    before = state()
    cp = review.edit(cp, people.carol, {"change": "X"})  # the value it already has
    assert state() == before  # no new version, no event, bob's approval kept
    review.approve(cp, people.carol, override_data={"change": "X"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert not run.events.filter(action__in=["edited", "approvals_voided"]).exists()


# -- 2. a run failed by its deadline is not retried past the review ----------------------------


def test_retrying_a_run_failed_by_its_deadline_reopens_the_review(people, registered_pipelines):
    sent = []
    registered_pipelines(
        stepkit("deadline-fail")
        .step(
            "draft",
            lambda c: {"draft": "text"},
            review=Review(timeout=timedelta(hours=1), on_timeout="fail", assign_to_group="editors"),
        )
        .step("send", lambda c: sent.append(c["draft"]) or {"sent": True})
    )
    run = start("deadline-fail", {}, user=people.alice)
    old = run.checkpoints.get()
    assert review.expire_due(now=timezone.now() + timedelta(hours=2)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    run = review.retry_run(run, people.root)
    assert run.status == RunStatus.PAUSED and sent == []  # nothing after the review ran
    new = run.checkpoints.get(status=CheckpointStatus.PENDING)
    assert new.pk != old.pk and new.step == old.step and new.review == old.review and new.token == old.token
    assert new.expires_at > old.expires_at  # a new deadline
    assert list(new.assigned_groups.values_list("name", flat=True)) == ["editors"]
    assert run.events.filter(action="run_retried").get().data["review_reopened"] == "draft"
    review.approve(new, people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and sent == ["text"]


# -- 3. no decision after the deadline ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # outside a transaction, the refusal applies the timeout rule at once
def test_a_decision_after_the_deadline_is_refused_and_the_timeout_rule_applies(people, registered_pipelines):
    sent = []
    registered_pipelines(
        stepkit("late")
        .step("draft", lambda c: {"draft": "text"}, review=Review(timeout=timedelta(minutes=5), on_timeout="reject"))
        .step("send", lambda c: sent.append(1) or {})
    )
    run = start("late", {}, user=people.alice)
    cp = run.checkpoints.get()
    Checkpoint.objects.filter(pk=cp.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # the sweeper is late
    with pytest.raises(ReviewExpired, match="deadline"):
        review.approve(cp, people.bob)
    with pytest.raises(ReviewConflict, match="already expired"):  # the rule was applied with the refusal
        review.edit(cp, people.bob, {"draft": "x"})
    cp.refresh_from_db()
    run.refresh_from_db()
    assert cp.status == CheckpointStatus.EXPIRED and run.status == RunStatus.REJECTED and sent == []
    assert not cp.events.filter(action__in=["approved", "edited"]).exists()


def test_a_late_decision_through_the_api_is_409(people, registered_pipelines):
    registered_pipelines(
        stepkit("late-api").step("draft", lambda c: {}, review=Review(timeout=timedelta(minutes=5))).step("send")
    )
    cp = start("late-api", {}, user=people.alice).checkpoints.get()
    Checkpoint.objects.filter(pk=cp.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.force_authenticate(people.bob)
    response = client.post(f"{API}/checkpoints/{cp.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "deadline" in response.json()["detail"]


# -- 4. on_timeout="approve" applies only approved edits: see tests/review/test_expiry.py -----------


# -- 5. an approver cannot choose the second approver ------------------------------------------


def test_an_approver_may_not_reassign_the_checkpoint(people, registered_pipelines):
    two_keys(registered_pipelines, [], assign_to_group="editors")
    cp = start("two-keys", {}, user=people.alice).checkpoints.get()
    sre1 = people.grant_reassign("bob")
    accomplice = User.objects.create_user("accomplice")
    accomplice.user_permissions.add(people.review_permission)
    cp = review.approve(cp, sre1)
    before = state()
    with pytest.raises(ReviewPermissionDenied, match="You approved this checkpoint"):
        review.reassign(cp, sre1, to_users=["accomplice"])
    assert state() == before


def test_reassigning_needs_its_own_permission(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    before = state()
    with pytest.raises(ReviewPermissionDenied, match="reassign_checkpoint"):
        review.reassign(cp, people.bob, to_groups=["managers"])  # a reviewer of it, without the permission
    assert state() == before
    review.reassign(cp, people.root, to_groups=["managers"])  # superusers have every permission


def test_the_runs_starter_may_not_choose_its_reviewers(people):
    starter = people.grant_reassign("carol")
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=starter).checkpoints.get()
    with pytest.raises(ReviewPermissionDenied, match="Four-eyes"):
        review.reassign(cp, starter, to_users=["dave"])


@pytest.mark.parametrize(
    ("targets", "errors"),
    [
        ({"to_users": ["ghost"]}, {"to_users": ["There is no user 'ghost'."]}),
        ({"to_users": ["gone"]}, {"to_users": ["gone is inactive and cannot review."]}),
        ({"to_users": ["alice"]}, {"to_users": ["alice cannot review this checkpoint (needs "
                                                "'stepkit_django.review_checkpoint')."]}),
        ({"to_groups": ["nowhere"]}, {"to_groups": ["There is no group 'nowhere'."]}),
        ({"to_users": [], "to_groups": []}, {"__all__": ["Choose at least one user or group."]}),
    ],
)  # fmt: skip
def test_reassign_targets_must_exist_be_active_and_may_review(people, targets, errors):
    gone = User.objects.create_user("gone", is_active=False)
    gone.user_permissions.add(people.review_permission)
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    before = state()
    with pytest.raises(InvalidAssignment) as refused:
        review.reassign(cp, people.root, **targets)
    assert refused.value.errors == errors
    assert state() == before


def test_the_api_refuses_a_reassignment_to_someone_who_cannot_review_with_a_field_error(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    client = APIClient()
    client.force_authenticate(people.root)
    response = client.post(f"{API}/checkpoints/{cp.pk}/reassign/", {"to_users": ["alice"]}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["to_users"]


# -- 6. deleting the assignees fails closed -----------------------------------------------------


def test_deleting_the_assigned_group_does_not_open_the_checkpoint_to_everyone(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    Group.objects.filter(name="editors").delete()
    assert not Checkpoint.objects.visible_to(people.dave).filter(pk=cp.pk).exists()
    assert not Checkpoint.objects.for_user(people.dave).filter(pk=cp.pk).exists()
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.dave)
    assert review.claim_next(people.dave) is None
    # a reassigner sees it, to fix it; a superuser may decide it
    fixer = people.grant_reassign("dave")
    assert Checkpoint.objects.for_user(fixer).filter(pk=cp.pk).exists()
    assert review.approve(cp, people.root).status == CheckpointStatus.APPROVED


def test_the_admin_shows_that_the_assignees_are_gone(people, client):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    Group.objects.filter(name="editors").delete()
    client.force_login(people.root)
    page = client.get(f"/admin/stepkit_django/checkpoint/{cp.pk}/change/").content.decode()
    assert "Nobody: its assignees were deleted." in page
    queue = client.get("/admin/stepkit_django/checkpoint/").content.decode()
    assert "its assignees were deleted" in queue


# -- 7. claims lapse -----------------------------------------------------------------------------


def test_a_claim_older_than_the_claim_timeout_no_longer_blocks_others(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    review.claim(cp, people.bob)
    with pytest.raises(ReviewConflict, match="claimed by bob"):
        review.approve(cp, people.carol)
    Checkpoint.objects.filter(pk=cp.pk).update(claimed_at=timezone.now() - timedelta(minutes=31))
    cp = review.approve(cp, people.carol)
    assert cp.status == CheckpointStatus.APPROVED
    taken = cp.events.get(action="released")
    assert taken.actor == people.carol and taken.data["reason"] == "claim expired" and taken.data["claimed_by"] == "bob"


@override_settings(STEPKIT={"CLAIM_TIMEOUT": timedelta(hours=8)})
def test_a_deactivated_users_claim_blocks_no_one(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    review.claim(cp, people.bob)
    User.objects.filter(pk=people.bob.pk).update(is_active=False)
    cp = review.claim(cp, people.carol)  # within the timeout, but bob left
    assert cp.claimed_by == people.carol
    assert cp.events.get(action="released").data["reason"] == "holder inactive"
    assert review.claim_next(people.bob) is None  # bob himself cannot act any more


def test_claim_next_takes_a_lapsed_claim(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    review.claim(cp, people.bob)
    assert review.claim_next(people.carol) is None
    Checkpoint.objects.filter(pk=cp.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    claimed = review.claim_next(people.carol)
    assert claimed is not None and claimed.pk == cp.pk and claimed.claimed_by == people.carol


# -- 10. another user's idempotency key ----------------------------------------------------------


def test_a_replayed_idempotency_key_answers_only_to_someone_who_may_see_the_run(people):
    from django.contrib.auth.models import Permission

    add = Permission.objects.get(codename="add_pipelinerun")
    for user in (people.alice, people.dave):
        user.user_permissions.add(add)
    alice, dave = APIClient(), APIClient()
    alice.force_authenticate(User.objects.get(pk=people.alice.pk))
    dave.force_authenticate(User.objects.get(pk=people.dave.pk))
    body = {"pipeline": "email-approval", "input": {"message": "private", "customer": "c", "to": "t@x"}}
    created = alice.post(f"{API}/runs/", {**body, "idempotency_key": "k-1"}, format="json")
    assert created.status_code == 201
    replay = alice.post(f"{API}/runs/", {**body, "idempotency_key": "k-1"}, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == created.json()["id"]
    other = dave.post(f"{API}/runs/", {**body, "idempotency_key": "k-1"}, format="json")
    assert other.status_code == 409 and "private" not in other.content.decode()
    assert PipelineRun.objects.count() == 1


# -- 15. failures in full only for run managers --------------------------------------------------


def test_a_failures_message_and_traceback_are_for_run_managers_only(people, registered_pipelines, client):
    def charge(ctx):
        raise ValueError("card 4111 1111 1111 1111 declined")

    registered_pipelines(
        stepkit("charge").step("review", lambda c: {}, review=Review(assign_to_group="editors")).step("charge", charge)
    )
    run = start("charge", {}, user=people.alice)
    review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "4111" in run.traceback
    reviewer = APIClient()
    reviewer.force_authenticate(people.bob)
    seen = reviewer.get(f"{API}/runs/{run.pk}/").content.decode() + reviewer.get(f"{API}/events/").content.decode()
    assert "4111" not in seen and "ValueError" in seen
    people.bob.is_staff = True
    people.bob.save()
    client.force_login(people.bob)
    page = client.get(f"/admin/stepkit_django/pipelinerun/{run.pk}/change/").content.decode()
    assert "4111" not in page and "ValueError after step review" in page
    assert "4111" not in client.get("/admin/stepkit_django/auditevent/").content.decode()
    client.force_login(people.root)
    assert "4111" in client.get(f"/admin/stepkit_django/pipelinerun/{run.pk}/change/").content.decode()
    manager = APIClient()
    manager.force_authenticate(people.root)
    assert "4111" in manager.get(f"{API}/runs/{run.pk}/").json()["error"]


# -- 18. a worker that does not know the pipeline yet ---------------------------------------------


def test_a_run_of_a_pipeline_this_worker_does_not_know_waits_then_fails(people, caplog):
    run = PipelineRun.objects.create(pipeline_name="deployed-tomorrow", input={}, context={})
    AuditEvent.objects.create(run=run, pipeline_name=run.pipeline_name, action="run_started")
    with caplog.at_level(logging.WARNING, logger="stepkit_django"):
        advance(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.lease_owner == ""
    assert "does not know pipeline 'deployed-tomorrow'" in caplog.text
    with override_settings(STEPKIT={"UNKNOWN_PIPELINE_GRACE": timedelta(microseconds=1)}):  # the grace is over
        advance(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "deployed-tomorrow" in run.error


# -- the state machine ---------------------------------------------------------------------------


def test_an_illegal_run_transition_is_refused_before_anything_is_written(people):
    run = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice)
    review.reject(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    before = state()
    with pytest.raises(IllegalTransition):
        move_run(run, RunStatus.REJECTED, RunStatus.QUEUED)  # a rejected run never runs again
    assert state() == before


def test_a_reassigner_may_not_choose_the_approvers_and_then_approve(people, registered_pipelines):
    applied = []
    two_keys(registered_pipelines, applied, assign_to_group="editors")
    cp = start("two-keys", {}, user=people.alice).checkpoints.get()
    lead = people.grant_reassign("bob")
    accomplice = User.objects.create_user("accomplice")
    accomplice.user_permissions.add(people.review_permission)
    cp = review.reassign(cp, lead, to_users=["bob", "accomplice"])
    with pytest.raises(ReviewPermissionDenied, match="You reassigned this checkpoint"):
        review.approve(cp, lead, override_data={"change": "EVIL"})
    assert applied == [] and not cp.approvals.exists()


def test_a_reassigner_acts_only_on_checkpoints_in_their_queue(people):
    cp = start("email-approval", {"message": "m", "customer": "c", "to": "t@x"}, user=people.alice).checkpoints.get()
    outsider = people.grant_reassign("dave")  # a manager; the checkpoint is the editors'
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.get(f"{API}/checkpoints/{cp.pk}/").status_code == 404
    before = state()
    response = client.post(f"{API}/checkpoints/{cp.pk}/reassign/", {"to_users": ["dave"]}, format="json")
    assert response.status_code == 404 and state() == before


def test_one_checkpoint_that_cannot_be_expired_does_not_stop_the_sweep(people, registered_pipelines):
    timed = Review(timeout=timedelta(minutes=5), on_timeout="approve")
    registered_pipelines(stepkit("retired").step("a", lambda c: {}, review=timed).step("b"))
    registered_pipelines(stepkit("kept").step("a", lambda c: {}, review=Review(timeout=timedelta(minutes=9))).step("b"))
    broken = start("retired", {}, user=people.alice).checkpoints.get()
    fine = start("kept", {}, user=people.alice).checkpoints.get()
    from stepkit_django import unregister

    unregister("retired")  # its approval cannot resume: PipelineNotFound
    assert review.expire_due(now=timezone.now() + timedelta(minutes=10)) == 1
    assert Checkpoint.objects.get(pk=fine.pk).status == CheckpointStatus.EXPIRED
    assert Checkpoint.objects.get(pk=broken.pk).status == CheckpointStatus.PENDING


def test_a_late_decision_inside_the_callers_transaction_leaves_the_rule_to_the_sweeper(people, registered_pipelines):
    from django.db import transaction

    sent = []
    timed = Review(timeout=timedelta(minutes=5), on_timeout="approve")
    registered_pipelines(
        stepkit("late-tx").step("a", lambda c: {}, review=timed).step("send", lambda c: sent.append(1))
    )
    cp = start("late-tx", {}, user=people.alice).checkpoints.get()
    Checkpoint.objects.filter(pk=cp.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ReviewExpired), transaction.atomic():  # as with ATOMIC_REQUESTS: the error rolls it back
        review.approve(cp, people.bob)
    assert sent == []  # nothing ran that the rollback could not undo
    assert review.expire_due() == 1 and sent == [1]  # the sweeper applies the rule, once
