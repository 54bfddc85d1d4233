"""The review services: who may act, quorum, claims, edits, conflicts and pipeline changes."""

import pytest
from django.contrib.auth.models import AnonymousUser

from stepkit_django import (
    InvalidAssignment,
    InvalidOverride,
    PipelineChanged,
    Review,
    ReviewConflict,
    ReviewPermissionDenied,
    review,
    start,
    stepkit,
)
from stepkit_django.models import Approval, AuditEvent, AuditTrailImmutable, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}


def paused_email(people, **kwargs):
    run = start("email-approval", EMAIL, user=people.alice, **kwargs)
    return run, run.checkpoints.get()


def snapshot():
    """Everything a refused call must leave unchanged."""
    return (
        list(Checkpoint.objects.values()),
        list(PipelineRun.objects.values()),
        AuditEvent.objects.count(),
        Approval.objects.count(),
        SideEffect.objects.count(),
    )


# -- who may review -----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["claim", "approve", "reject", "edit"])
def test_anonymous_and_inactive_users_are_refused(people, action):
    _, cp = paused_email(people)
    people.bob.is_active = False
    people.bob.save()
    before = snapshot()
    for user in (None, AnonymousUser(), people.bob):
        call = {"edit": lambda u: review.edit(cp, u, {"body": "x"})}.get(
            action, lambda u: getattr(review, action)(cp, u)
        )
        with pytest.raises(ReviewPermissionDenied):
            call(user)
    assert snapshot() == before


def test_missing_permission_is_refused(people):
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(ReviewPermissionDenied, match=r"stepkit_django\.review_checkpoint"):
        review.approve(cp, people.eve)  # in the editors group but without the permission
    assert snapshot() == before


def test_reviewer_outside_the_assigned_group_is_refused(people):
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(ReviewPermissionDenied, match="assigned to other reviewers"):
        review.approve(cp, people.dave)
    assert snapshot() == before
    assert review.can_review(cp, people.dave) is False
    assert review.can_review(cp, people.bob) is True


def test_superuser_may_review_any_assignment(people):
    run, cp = paused_email(people)
    review.approve(cp, people.root)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_four_eyes_the_starter_may_not_approve_their_own_run(people, registered_pipelines):
    registered_pipelines(stepkit("self-check").step("draft", lambda c: {}, review=Review()).step("done"))
    run = start("self-check", {}, user=people.bob)
    with pytest.raises(ReviewPermissionDenied, match="Four-eyes"):
        review.approve(run.checkpoints.get(), people.bob)
    review.approve(run.checkpoints.get(), people.carol)


def test_self_approval_when_allowed(people, registered_pipelines):
    registered_pipelines(stepkit("self-ok").step("draft", lambda c: {}, review=Review(allow_self_approval=True)))
    run = start("self-ok", {}, user=people.bob)
    review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_assignment_to_users_by_callable(people, registered_pipelines):
    registered_pipelines(
        stepkit("owner-review").step("draft", lambda c: {}, review=Review(assign_to_user=lambda ctx: ctx["owner"]))
    )
    run = start("owner-review", {"owner": "carol"}, user=people.alice)
    cp = run.checkpoints.get()
    assert list(cp.assigned_users.all()) == [people.carol]
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.bob)
    review.approve(cp, people.carol)


def test_custom_permission_per_review(people, registered_pipelines):
    registered_pipelines(
        stepkit("runs-only").step("s", lambda c: {}, review=Review(permission="stepkit_django.manage_pipelinerun"))
    )
    run = start("runs-only", {}, user=people.alice)
    with pytest.raises(ReviewPermissionDenied, match="manage_pipelinerun"):
        review.approve(run.checkpoints.get(), people.bob)


# -- misconfiguration fails loudly ------------------------------------------------------------


def test_review_assigned_to_a_missing_group_fails_the_run_loudly(people, registered_pipelines):
    registered_pipelines(stepkit("typo").step("s", lambda c: {}, review=Review(assign_to_group="editorz")))
    run = start("typo", {}, user=people.alice)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("ReviewMisconfigured:")
    assert "'editorz', which do not exist" in run.error
    assert not run.checkpoints.exists()


def test_review_with_an_unknown_permission_fails_the_run(people, registered_pipelines):
    registered_pipelines(stepkit("bad-perm").step("s", lambda c: {}, review=Review(permission="shop.approve_refund")))
    run = start("bad-perm", {}, user=people.alice)
    assert run.status == RunStatus.FAILED
    assert "shop.approve_refund" in run.error


def test_review_declaration_errors_are_raised_when_declaring():
    with pytest.raises(ValueError, match="approvals_required"):
        Review(approvals_required=0)
    with pytest.raises(ValueError, match="escalate_to_group"):
        Review(on_timeout="escalate")
    with pytest.raises(ValueError, match="on_timeout"):
        Review(on_timeout="ignore")
    with pytest.raises(TypeError, match="review= takes a Review"):
        stepkit().step("s", lambda c: {}, review={"editable": ["x"]})


# -- quorum ---------------------------------------------------------------------------------


def test_quorum_of_two_distinct_approvers(people, registered_pipelines):
    sent = []
    registered_pipelines(
        stepkit("two-keys")
        .step("stage", lambda c: {"change": "enable-feature"}, review=Review(approvals_required=2))
        .step("apply", lambda c: sent.append(c["change"]) or {"applied": True})
    )
    run = start("two-keys", {}, user=people.alice)
    cp = review.approve(run.checkpoints.get(), people.bob)
    assert cp.status == CheckpointStatus.PENDING
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and sent == []
    with pytest.raises(ReviewConflict, match="already approved"):
        review.approve(cp, people.bob)  # the same person twice does not count twice
    cp = review.approve(cp, people.carol)
    assert cp.status == CheckpointStatus.APPROVED
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and sent == ["enable-feature"]
    assert [e.data for e in run.events.filter(action="approved")] == [
        {"approvals": 1, "required": 2, "version": 1},
        {"approvals": 2, "required": 2, "version": 2},
    ]


# -- claims, versions, conflicts --------------------------------------------------------------


def test_a_claim_blocks_other_reviewers_until_released(people):
    _, cp = paused_email(people)
    cp = review.claim(cp, people.bob)
    assert cp.claimed_by == people.bob
    before = snapshot()
    for call in (review.claim, review.approve, review.reject):
        with pytest.raises(ReviewConflict, match="claimed by bob"):
            call(cp, people.carol)
    with pytest.raises(ReviewPermissionDenied):
        review.release(cp, people.carol)
    assert snapshot() == before
    cp = review.release(cp, people.bob)
    assert cp.claimed_by is None
    review.claim(cp, people.carol)
    assert [e.action for e in cp.events.all()] == ["paused", "claimed", "released", "claimed"]


def test_claiming_twice_is_a_no_op_for_the_holder(people):
    _, cp = paused_email(people)
    cp = review.claim(cp, people.bob)
    cp = review.claim(cp, people.bob)
    assert cp.events.filter(action="claimed").count() == 1


def test_stale_expected_version_conflicts(people):
    _, cp = paused_email(people)
    seen = cp.version
    review.edit(cp, people.bob, {"subject": "New subject"})
    before = snapshot()
    with pytest.raises(ReviewConflict, match=f"version {seen}"):
        review.approve(cp, people.carol, expected_version=seen)
    assert snapshot() == before


def test_decided_checkpoints_cannot_be_decided_again(people):
    _, cp = paused_email(people)
    review.reject(cp, people.bob)
    for call in (review.approve, review.reject, review.claim):
        with pytest.raises(ReviewConflict, match="already rejected"):
            call(cp, people.carol)


def test_reassign_moves_the_checkpoint_and_drops_the_claim(people):
    _, cp = paused_email(people)
    review.claim(cp, people.bob)
    cp = review.reassign(cp, people.grant_reassign("bob"), to_groups=["managers"])
    assert cp.claimed_by is None
    assert list(cp.assigned_groups.values_list("name", flat=True)) == ["managers"]
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.carol)
    review.approve(cp, people.dave)
    event = cp.events.get(action="reassigned")
    assert event.data == {
        "before": {"users": [], "groups": ["editors"]},
        "after": {"users": [], "groups": ["managers"]},
    }


def test_reassign_to_a_missing_group_changes_nothing(people):
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(InvalidAssignment, match="nobody") as refused:
        review.reassign(cp, people.grant_reassign("bob"), to_groups=["nobody"])
    assert refused.value.errors == {"to_groups": ["There is no group 'nobody'."]}
    assert snapshot() == before


# -- edited data -------------------------------------------------------------------------------


def test_edit_of_a_key_that_is_not_editable_is_refused_and_changes_nothing(people):
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(InvalidOverride) as info:
        review.edit(cp, people.bob, {"to": "attacker@example.com", "body": "fine"})
    assert list(info.value.errors) == ["to"]
    assert "not editable" in info.value.errors["to"][0]
    assert snapshot() == before


def test_edit_that_violates_the_schema_is_refused_with_per_key_messages(people):
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(InvalidOverride) as info:
        review.approve(cp, people.bob, override_data={"subject": "", "body": 42})
    assert set(info.value.errors) == {"subject", "body"}
    assert "42 is not of type 'string'" in info.value.errors["body"][0]
    assert snapshot() == before


def test_edit_over_the_size_limit_is_refused(people, settings):
    settings.STEPKIT = {"MAX_OVERRIDE_BYTES": 1000}
    _, cp = paused_email(people)
    before = snapshot()
    with pytest.raises(InvalidOverride, match="the limit is 1000 bytes"):
        review.edit(cp, people.bob, {"body": "x" * 2000})
    assert snapshot() == before


def test_override_must_be_an_object(people):
    _, cp = paused_email(people)
    with pytest.raises(InvalidOverride, match="must be an object"):
        review.edit(cp, people.bob, ["body", "x"])


def test_successive_edits_accumulate_and_the_run_resumes_with_all_of_them(people):
    _run, cp = paused_email(people)
    review.edit(cp, people.bob, {"subject": "Subject 2"})
    review.edit(cp, people.carol, {"body": "Body 2"})
    review.approve(cp, people.carol)
    assert SideEffect.objects.get().payload == {"subject": "Subject 2", "body": "Body 2"}


# -- pipeline changes --------------------------------------------------------------------------


def versioned(version, *steps, **register_kwargs):
    p = stepkit("evolving", version=version)
    for name in steps:
        p = p.step(name, lambda c, name=name: {name: True}, review=Review() if name == "draft" else None)
    return p


def test_approving_after_a_version_bump_raises_pipeline_changed(people, registered_pipelines):
    registered_pipelines(versioned(1, "draft", "publish"))
    run = start("evolving", {}, user=people.alice)
    registered_pipelines(versioned(2, "draft", "publish"), replace=True)
    before = snapshot()
    with pytest.raises(PipelineChanged, match="from version 1 to 2"):
        review.approve(run.checkpoints.get(), people.bob)
    assert snapshot() == before


def test_approving_after_the_paused_step_was_removed_raises_pipeline_changed(people, registered_pipelines):
    registered_pipelines(versioned(1, "draft", "publish"))
    run = start("evolving", {}, user=people.alice)
    registered_pipelines(stepkit("evolving", version=1).step("write").step("publish"), replace=True)
    with pytest.raises(PipelineChanged, match="'draft' is not a step"):
        review.approve(run.checkpoints.get(), people.bob)


def test_a_migration_hook_lets_old_checkpoints_resume(people, registered_pipelines):
    registered_pipelines(versioned(1, "draft", "publish"))
    run = start("evolving", {"title": "old"}, user=people.alice)
    registered_pipelines(
        versioned(2, "draft", "review-links", "publish"),
        migrations={1: lambda ctx, step: {**ctx, "migrated": True}},
        replace=True,
    )
    review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.pipeline_version == 2
    assert run.context.pop("review")["outcome"] == "approved"  # the decision, for the steps after it
    assert run.context == {"title": "old", "draft": True, "migrated": True, "review-links": True, "publish": True}


# -- runs ----------------------------------------------------------------------------------------


def test_cancel_run_cancels_its_pending_checkpoints(people):
    run, cp = paused_email(people)
    with pytest.raises(ReviewPermissionDenied):
        review.cancel_run(run, people.bob)  # neither the starter nor a run manager
    run = review.cancel_run(run, people.alice)
    assert run.status == RunStatus.CANCELLED
    cp.refresh_from_db()
    assert cp.status == CheckpointStatus.CANCELLED
    with pytest.raises(ReviewConflict):
        review.approve(cp, people.bob)
    with pytest.raises(ReviewConflict, match="already ended"):
        review.cancel_run(run, people.alice)
    assert run.events.filter(action="run_cancelled").count() == 1


# -- the audit trail is append-only -------------------------------------------------------------


def test_audit_events_cannot_be_updated_or_deleted(people):
    run, _ = paused_email(people)
    event = run.events.first()
    event.note = "rewritten"
    with pytest.raises(AuditTrailImmutable):
        event.save()
    with pytest.raises(AuditTrailImmutable):
        event.delete()
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(run=run).update(note="rewritten")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(run=run).delete()
    assert not AuditEvent.objects.filter(note="rewritten").exists()


def test_runs_with_an_audit_trail_cannot_be_deleted(people):
    from django.db.models import ProtectedError

    run, _ = paused_email(people)
    with pytest.raises(ProtectedError):
        PipelineRun.objects.filter(pk=run.pk).delete()


# -- the queue's columns ------------------------------------------------------------------


def _unassigned(people, registered_pipelines):
    registered_pipelines(stepkit("open-review").step("draft", lambda c: {"text": "hi"}, review=Review()))
    return start("open-review", {}, user=people.alice).checkpoints.get()


def test_a_checkpoint_stores_its_permission_and_whether_it_is_assigned(people, registered_pipelines):
    unassigned = _unassigned(people, registered_pipelines)
    _, assigned = paused_email(people)
    assert (unassigned.permission, unassigned.assigned) == ("stepkit_django.review_checkpoint", False)
    assert (assigned.permission, assigned.assigned) == ("stepkit_django.review_checkpoint", True)
    assert Checkpoint.objects.for_user(people.dave).filter(pk=unassigned.pk).exists()  # open to any reviewer


@pytest.mark.parametrize("side", ["users", "groups", "user's side", "group's side", "a bare instance"])
def test_an_assignment_added_through_the_orm_hides_the_checkpoint_from_other_reviewers(
    people, registered_pipelines, side
):
    cp = _unassigned(people, registered_pipelines)
    {
        "users": lambda: cp.assigned_users.add(people.bob),
        "groups": lambda: cp.assigned_groups.add(people.editors),
        "user's side": lambda: people.bob.stepkit_assigned_checkpoints.add(cp),
        "group's side": lambda: people.editors.stepkit_assigned_checkpoints.add(cp),
        # an instance that does not know the row's assigned column (its default is True)
        "a bare instance": lambda: Checkpoint(pk=cp.pk).assigned_users.add(people.bob.pk),
    }[side]()
    cp.refresh_from_db()
    assert cp.assigned is True
    visible = Checkpoint.objects.filter(pk=cp.pk)
    assert visible.for_user(people.bob).exists()
    assert not visible.for_user(people.dave).exists()  # a reviewer with the permission, not assigned
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.dave)
    assert review.claim_next(people.dave) is None


def test_a_checkpoint_stored_without_a_permission_is_in_the_queue_of_the_default_permissions_holders(
    people, registered_pipelines
):
    cp = _unassigned(people, registered_pipelines)
    Checkpoint.objects.filter(pk=cp.pk).update(permission="", review={"approvals_required": 1})
    assert Checkpoint.objects.for_user(people.dave).filter(pk=cp.pk).exists()  # holds the default permission
    assert not Checkpoint.objects.for_user(people.eve).filter(pk=cp.pk).exists()  # holds none
    assert review.approve(cp.pk, people.dave).status == CheckpointStatus.APPROVED  # the service agrees


def test_the_migration_fills_the_columns_from_the_review_settings_and_the_assignments(people, registered_pipelines):
    import importlib

    from django.apps import apps
    from django.db import connection

    unassigned = _unassigned(people, registered_pipelines)
    _, assigned = paused_email(people)
    Checkpoint.objects.update(permission="", assigned=True)  # as the columns are before the migration fills them
    Checkpoint.objects.filter(pk=assigned.pk).update(assigned=False)
    fill = importlib.import_module("stepkit_django.migrations.0006_checkpoint_permission_assigned").fill
    fill(apps, type("SchemaEditor", (), {"connection": connection})())
    rows = dict(Checkpoint.objects.values_list("pk", "assigned"))
    assert rows == {unassigned.pk: False, assigned.pk: True}
    assert set(Checkpoint.objects.values_list("permission", flat=True)) == {"stepkit_django.review_checkpoint"}
