"""Re-running a run from one of its checkpoints: a new run, the original untouched, its reviews met again."""

import pytest
from django.contrib.auth.models import AnonymousUser, Permission, User

from stepkit_django import InvalidOverride, PipelineChanged, Review, ReviewPermissionDenied, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.sentences import tell
from stepkit_django.status import AuditAction, CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

from .test_review import EMAIL, paused_email, snapshot
from .test_revisions import letters

pytestmark = pytest.mark.django_db


def manager(people):
    """Dave, given the permission to manage any run (he did not start the runs of these tests)."""
    people.dave.user_permissions.add(Permission.objects.get(codename="manage_pipelinerun"))
    return User.objects.get(pk=people.dave.pk)


def approved_email(people):
    run, cp = paused_email(people)
    review.approve(cp, people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return run, Checkpoint.objects.get(pk=cp.pk)


def steps_run(run):
    return list(
        AuditEvent.objects.filter(run=run, action=AuditAction.STEP_COMPLETED).values_list("data__step", flat=True)
    )


def test_a_rerun_of_an_approved_checkpoint_resumes_right_after_its_step_with_its_context(people):
    original, cp = approved_email(people)
    rerun = review.rerun_from(cp, people.alice)
    assert rerun.pk != original.pk
    assert rerun.forked_from == cp
    assert rerun.started_by == people.alice
    assert rerun.status == RunStatus.COMPLETED
    assert steps_run(rerun) == ["send"]  # the step of the checkpoint did not run again
    assert rerun.input == original.input
    assert rerun.context == original.context  # the next step read what it read in the original, the approval too
    assert SideEffect.objects.filter(kind="email").count() == 2


def test_a_rerun_with_the_approved_edits_resumes_with_them(people):
    _, cp = paused_email(people)
    review.approve(cp, people.bob, {"subject": "Approved subject"})
    rerun = review.rerun_from(cp.pk, people.alice, {"subject": "Approved subject"})
    assert rerun.status == RunStatus.COMPLETED
    assert rerun.context["subject"] == "Approved subject"


def test_a_rerun_with_new_edits_waits_for_a_review_of_them(people):
    _, cp = approved_email(people)
    rerun = review.rerun_from(cp, people.alice, {"subject": "Second try"})
    assert rerun.status == RunStatus.PAUSED
    assert steps_run(rerun) == []
    pending = rerun.checkpoints.get()
    assert (pending.status, pending.step, pending.context) == (CheckpointStatus.PENDING, cp.step, cp.context)
    assert pending.override_data == {"subject": "Second try"}
    assert {g.name for g in pending.assigned_groups.all()} == {"editors"}
    edited = AuditEvent.objects.get(checkpoint=pending, action=AuditAction.EDITED)
    assert edited.actor == people.alice
    assert edited.data["changes"]["subject"]["after"] == "Second try"
    review.approve(pending, people.bob)
    rerun.refresh_from_db()
    assert rerun.status == RunStatus.COMPLETED
    assert SideEffect.objects.filter(kind="email").last().payload["subject"] == "Second try"


def test_the_rerunner_may_not_approve_the_review_of_their_own_rerun(people):
    _, cp = approved_email(people)
    rerun = review.rerun_from(cp, manager(people), {"subject": "Mine"})
    with pytest.raises(ReviewPermissionDenied, match="Four-eyes"):
        review.approve(rerun.checkpoints.get(), people.dave)


@pytest.mark.parametrize(
    ("override", "key"),
    [({"to": "eve@example.com"}, "to"), ({"subject": ""}, "subject"), (["subject"], "__all__")],
)
def test_the_edits_are_validated_as_a_reviewers_edit_and_a_bad_one_changes_nothing(people, override, key):
    _, cp = approved_email(people)
    before = snapshot()
    with pytest.raises(InvalidOverride) as raised:
        review.rerun_from(cp, people.alice, override)
    assert key in raised.value.errors
    assert snapshot() == before


@pytest.mark.parametrize("decide", ["reject", "cancel", "expire"])
def test_a_rerun_from_a_checkpoint_that_was_not_approved_opens_its_review_again(people, decide):
    run, cp = paused_email(people)
    if decide == "reject":
        review.reject(cp, people.bob, "Too short")
    elif decide == "cancel":
        review.cancel_run(run, people.alice)
    else:
        Checkpoint.objects.filter(pk=cp.pk).update(expires_at="2000-01-01T00:00:00Z")
        review.expire_due()
    cp.refresh_from_db()
    before = (cp.status, PipelineRun.objects.get(pk=run.pk).status)
    rerun = review.rerun_from(cp, people.alice)
    assert rerun.status == RunStatus.PAUSED
    assert rerun.checkpoints.get().status == CheckpointStatus.PENDING
    cp.refresh_from_db()
    assert (cp.status, PipelineRun.objects.get(pk=run.pk).status) == before  # the original stays as it ended
    assert SideEffect.objects.filter(kind="email").count() == 0


def test_a_rerun_from_a_pending_checkpoint_leaves_the_original_waiting(people):
    run, cp = paused_email(people)
    rerun = review.rerun_from(cp, people.alice)
    assert rerun.status == RunStatus.PAUSED
    cp.refresh_from_db()
    run.refresh_from_db()
    assert (cp.status, cp.version, run.status) == (CheckpointStatus.PENDING, 1, RunStatus.PAUSED)
    assert Checkpoint.objects.filter(status=CheckpointStatus.PENDING).count() == 2


def test_later_reviews_of_the_rerun_pause_it_again(people, registered_pipelines):
    registered_pipelines(
        stepkit("two-reviews")
        .step("draft", lambda c: {"text": "v1"}, review=Review(editable=["text"]))
        .step("check", lambda c: {"checked": True}, review=Review())
        .step("publish", lambda c: {"published": c["text"]})
    )
    run = start("two-reviews", {}, user=people.alice)
    first = run.checkpoints.get()
    review.approve(first, people.bob)
    review.approve(run.checkpoints.get(step="check"), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    rerun = review.rerun_from(first, people.alice)
    assert rerun.status == RunStatus.PAUSED
    assert steps_run(rerun) == ["check"]
    assert [c.step for c in rerun.checkpoints.all()] == ["check"]
    review.approve(rerun.checkpoints.get(), people.bob)
    rerun.refresh_from_db()
    assert rerun.status == RunStatus.COMPLETED
    assert rerun.context["published"] == "v1"


# -- who may ---------------------------------------------------------------------------------


def test_the_starter_and_run_managers_may_rerun_and_others_may_not(people):
    _, cp = approved_email(people)
    assert review.rerun_from(cp, people.alice).started_by == people.alice
    dave = manager(people)
    assert review.rerun_from(cp, dave).started_by == dave
    assert review.rerun_from(cp, people.root).started_by == people.root
    before = snapshot()
    for user in (people.bob, people.carol, None, AnonymousUser()):  # reviewers of it, and nobody
        with pytest.raises(ReviewPermissionDenied):
            review.rerun_from(cp, user)
    assert snapshot() == before


def test_can_rerun_answers_as_rerun_from_does(people):
    from stepkit_django import permissions

    run, _ = paused_email(people)
    assert permissions.can_rerun(run, people.alice)
    assert permissions.can_rerun(run, manager(people))
    assert not permissions.can_rerun(run, people.bob)
    assert not permissions.can_rerun(run, None)


# -- the trail ---------------------------------------------------------------------------------


def test_the_rerun_is_told_on_both_runs(people):
    original, cp = approved_email(people)
    rerun = review.rerun_from(cp, people.alice, {"body": "Kinder words"})
    forked = AuditEvent.objects.get(run=original, action=AuditAction.RUN_FORKED)
    assert (forked.actor, forked.checkpoint) == (people.alice, cp)
    assert forked.data == {"run": str(rerun.pk), "checkpoint": str(cp.pk), "step": "generate", "edited": ["body"]}
    assert tell(forked, full=True).sentence == "Re-run by alice from step generate as a new run, with edits to body"
    started = AuditEvent.objects.get(run=rerun, action=AuditAction.RUN_STARTED)
    assert started.actor == people.alice
    assert started.data["forked_from"] == str(cp.pk)
    assert tell(started, full=True).sentence == "Run started by alice as a rerun from the review of step generate"
    paused = AuditEvent.objects.get(run=rerun, action=AuditAction.PAUSED)
    assert "opened again by a rerun" in tell(paused, full=True).sentence


# -- pipeline versions -----------------------------------------------------------------------------


def versioned(version, *steps):
    p = stepkit("evolving", version=version)
    for name in steps:
        p = p.step(name, lambda c, name=name: {name: True}, review=Review() if name == "draft" else None)
    return p


def test_a_checkpoint_of_an_older_version_needs_a_migration_to_be_rerun(people, registered_pipelines):
    registered_pipelines(versioned(1, "draft", "publish"))
    run = start("evolving", {"title": "old"}, user=people.alice)
    cp = run.checkpoints.get()
    review.approve(cp, people.bob)
    registered_pipelines(versioned(2, "draft", "links", "publish"), replace=True)
    before = snapshot()
    with pytest.raises(PipelineChanged, match="from version 1 to 2"):
        review.rerun_from(cp, people.alice)
    assert snapshot() == before
    registered_pipelines(
        versioned(2, "draft", "links", "publish"),
        migrations={1: lambda ctx, step: {**ctx, "migrated": True}},
        replace=True,
    )
    rerun = review.rerun_from(cp, people.alice)
    assert (rerun.status, rerun.pipeline_version) == (RunStatus.COMPLETED, 2)
    assert rerun.context.pop("review")["outcome"] == "approved"  # the approval it resumes on
    assert rerun.context == {"title": "old", "draft": True, "migrated": True, "links": True, "publish": True}


def test_the_email_of_the_rerun_goes_to_the_original_recipient(people):
    _, cp = approved_email(people)
    review.rerun_from(cp, people.alice)
    assert SideEffect.objects.filter(kind="email").last().key == EMAIL["to"]


# -- a rerun never carries data past a review that no person approved as it is ----------------


def test_a_rerun_of_a_review_with_choices_waits_for_a_choice_again(people, registered_pipelines):
    registered_pipelines(
        stepkit("moderate")
        .step("score", lambda c: {"text": c["text"]}, review=Review(choices={"publish": "Publish", "hide": "Hide"}))
        .step("act", lambda c: {"done": c["choice"]})
    )
    run = start("moderate", {"text": "WINNER", "choice": "publish"}, user=people.alice)  # the starter's own pick
    cp = review.approve(run.checkpoints.get(), people.bob, choice="hide")
    run.refresh_from_db()
    assert run.context["done"] == "hide"
    rerun = review.rerun_from(cp, people.alice)
    assert rerun.status == RunStatus.PAUSED  # not "publish": the reviewer's choice is asked for again
    assert "done" not in rerun.context


def test_a_rerun_does_not_apply_edits_an_automatic_approval_left_out(people, registered_pipelines):
    from datetime import timedelta

    from django.utils import timezone

    registered_pipelines(
        stepkit("pay-late")
        .step(
            "check",
            lambda c: {"amount": 100},
            review=Review(timeout=timedelta(hours=1), on_timeout="approve", editable=["amount"]),
        )
        .step("pay", lambda c: {"paid": c["amount"]})
    )
    run = start("pay-late", {}, user=people.alice)
    cp = review.edit(run.checkpoints.get(), people.bob, {"amount": 100_000})  # edited, never approved
    assert review.expire_due(now=timezone.now() + timedelta(hours=2)) == 1
    run.refresh_from_db()
    assert run.context["paid"] == 100  # the timeout approved the step's own data
    rerun = review.rerun_from(Checkpoint.objects.get(pk=cp.pk), people.alice, {"amount": 100_000})
    assert rerun.status == RunStatus.PAUSED and "paid" not in rerun.context


def test_the_starter_of_the_original_run_may_not_review_a_run_managers_rerun_of_it(people):
    _, cp = approved_email(people)
    rerun = review.rerun_from(cp, manager(people), {"subject": "Second try"})
    reopened = rerun.checkpoints.get(status=CheckpointStatus.PENDING)
    people.alice.user_permissions.add(people.review_permission)
    people.alice.groups.add(people.editors)  # an editor now, like the reviewers of this review
    alice = User.objects.get(pk=people.alice.pk)
    with pytest.raises(ReviewPermissionDenied, match="Four-eyes"):
        review.approve(reopened, alice)


def test_a_rerun_after_an_approved_revision_gives_the_next_step_that_approval_not_the_earlier_request(
    people, registered_pipelines
):
    # The rerun resumes right after the step because the revision was approved: the steps after it read that
    # approval under the decision key, as the original run's did, never the request for changes before it.
    calls: list = []
    registered_pipelines(letters(calls))
    first = start("letters", {"to": "Ann"}, user=people.alice).checkpoints.get()
    review.request_changes(first, people.bob, "Warmer")
    second = Checkpoint.objects.get(status=CheckpointStatus.PENDING)
    review.approve(second, people.carol, comment="Good now")
    original = PipelineRun.objects.get(pk=second.run_id)
    rerun = review.rerun_from(second, people.alice)
    assert rerun.status == RunStatus.COMPLETED
    assert calls[-1][0] == "send"
    assert {k: calls[-1][1][k] for k in ("outcome", "comment", "by", "revision")} == {
        "outcome": "approved",
        "comment": "Good now",
        "by": "carol",
        "revision": 2,
    }
    assert rerun.context == original.context
