"""The human-approval story end to end: generate → pause → edit → approve → send, audited."""

import pytest

from stepkit_django import review, start
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Where is my order?", "customer": "Ada", "to": "ada@example.com"}


def test_email_is_drafted_paused_edited_approved_and_sent_once_with_the_edit(people):
    run = start("email-approval", EMAIL, user=people.alice)

    assert run.status == RunStatus.PAUSED
    assert run.current_step == "generate"
    assert SideEffect.objects.count() == 0  # nothing sent before approval
    checkpoint = run.checkpoints.get()
    assert checkpoint.status == CheckpointStatus.PENDING
    assert checkpoint.step == "generate"
    assert checkpoint.context["body"] == "Hello Ada, thanks for writing."
    assert list(checkpoint.assigned_groups.values_list("name", flat=True)) == ["editors"]

    checkpoint = review.claim(checkpoint, people.bob)
    checkpoint = review.edit(checkpoint, people.bob, {"body": "Hi Ada, your order ships today."})
    checkpoint = review.approve(checkpoint, people.bob, comment="Friendlier")

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.context["sent"] is True
    sent = list(SideEffect.objects.filter(kind="email").values_list("payload", flat=True))
    assert sent == [{"subject": "Re: Where is my order?", "body": "Hi Ada, your order ships today."}]
    checkpoint.refresh_from_db()
    assert (checkpoint.status, checkpoint.decided_by, checkpoint.comment) == ("approved", people.bob, "Friendlier")
    assert checkpoint.approvals.get().user == people.bob

    actions = list(run.events.values_list("action", flat=True))
    assert actions == [
        "run_started",
        "step_completed",
        "paused",
        "claimed",
        "edited",
        "approved",
        "resumed",
        "step_completed",
        "run_completed",
    ]
    edited = run.events.get(action="edited")
    assert edited.actor == people.bob
    assert edited.data == {
        "changes": {"body": {"before": "Hello Ada, thanks for writing.", "after": "Hi Ada, your order ships today."}}
    }


def test_the_audit_trail_reads_naturally_with_the_orm(people):
    run = start("email-approval", EMAIL, user=people.alice)
    checkpoint = run.checkpoints.get()
    review.approve(checkpoint, people.bob)

    assert run.events.count() == 7
    assert list(AuditEvent.objects.filter(actor=people.bob, action="approved").values_list("run", flat=True)) == [
        run.pk
    ]
    assert [e.action for e in checkpoint.events.all()] == ["paused", "approved", "resumed"]
    assert AuditEvent.objects.filter(pipeline_name="email-approval", action="step_completed").count() == 2
    assert PipelineRun.objects.filter(events__actor=people.bob).distinct().get() == run


def test_rejecting_ends_the_run_and_sends_nothing(people):
    run = start("email-approval", EMAIL, user=people.alice)
    checkpoint = review.reject(run.checkpoints.get(), people.carol, comment="Off-brand")
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED
    assert run.finished_at is not None
    assert checkpoint.status == CheckpointStatus.REJECTED
    assert SideEffect.objects.count() == 0
    assert run.events.get(action="rejected").note == "Off-brand"


def test_step_when_pauses_only_above_the_threshold(people):
    small = start("payment-approval", {"amount": 200}, user=people.alice)
    assert small.status == RunStatus.COMPLETED
    assert not small.checkpoints.exists()
    big = start("payment-approval", {"amount": 5000}, user=people.alice)
    assert big.status == RunStatus.PAUSED
    assert SideEffect.objects.filter(kind="payment").count() == 1
    review.approve(big.checkpoints.get(), people.dave)
    big.refresh_from_db()
    assert big.status == RunStatus.COMPLETED
    assert SideEffect.objects.filter(kind="payment").count() == 2


def test_a_review_inside_a_branch_pauses_and_resumes_into_the_branch(people, registered_pipelines):
    from stepkit_django import Review, otherwise, stepkit, when

    published = []
    registered_pipelines(
        stepkit("moderation")
        .step("score", lambda c: {"risk": 0.5 if "click" in c["text"] else 0.0})
        .branch_on(
            "route",
            when(lambda c: c["risk"] == 0, lambda b: b.step("publish", lambda c: {"status": "published"}), name="safe"),
            otherwise(
                lambda b: b.step("hold", lambda c: {"status": "held"}, review=Review(editable=["text"])).step(
                    "publish", lambda c: published.append(c["text"]) or {"status": "published"}
                ),
                name="suspicious",
            ),
        )
        .step("notify", lambda c: {"notified": c["status"]})
    )
    run = start("moderation", {"text": "click here"}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    cp = run.checkpoints.get()
    assert cp.step == "route/suspicious/hold"
    review.approve(cp, people.bob, override_data={"text": "a calmer text"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert published == ["a calmer text"]
    assert run.context.pop("review")["outcome"] == "approved"  # the decision, carried out of the branch
    assert run.context == {"text": "a calmer text", "risk": 0.5, "status": "published", "notified": "published"}
    steps = [e.data["step"] for e in run.events.filter(action="step_completed")]
    assert steps == ["score", "route/suspicious/hold", "route/suspicious/publish", "route", "notify"]
