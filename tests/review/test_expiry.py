"""Deadlines: expire_due() applies each on_timeout exactly once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db

LATER = timedelta(days=3)


def register_timed(registered_pipelines, on_timeout, **extra):
    sent = []
    registered_pipelines(
        stepkit(f"timed-{on_timeout}")
        .step(
            "draft",
            lambda c: {"draft": "text"},
            review=Review(timeout=timedelta(days=2), on_timeout=on_timeout, assign_to_group="editors", **extra),
        )
        .step("send", lambda c: sent.append(c["draft"]) or {"sent": True})
    )
    return sent


def test_nothing_expires_before_the_deadline(people, registered_pipelines):
    register_timed(registered_pipelines, "reject")
    run = start("timed-reject", {}, user=people.alice)
    cp = run.checkpoints.get()
    assert cp.expires_at is not None
    assert review.expire_due(now=timezone.now() + timedelta(days=1)) == 0
    cp.refresh_from_db()
    assert cp.status == CheckpointStatus.PENDING


def test_on_timeout_reject(people, registered_pipelines):
    sent = register_timed(registered_pipelines, "reject")
    run = start("timed-reject", {}, user=people.alice)
    assert review.expire_due(now=timezone.now() + LATER) == 1
    run.refresh_from_db()
    cp = run.checkpoints.get()
    assert (cp.status, run.status, sent) == (CheckpointStatus.EXPIRED, RunStatus.REJECTED, [])
    assert run.events.get(action="expired").data["on_timeout"] == "reject"
    assert review.expire_due(now=timezone.now() + LATER) == 0  # exactly once


def test_on_timeout_approve_resumes_without_edits_nobody_approved(people, registered_pipelines):
    sent = register_timed(registered_pipelines, "approve")
    run = start("timed-approve", {}, user=people.alice)
    review.edit(run.checkpoints.get(), people.bob, {"draft": "edited before the deadline"})
    assert review.expire_due(now=timezone.now() + LATER) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert sent == ["text"]  # the paused step's own output: no one approved the edit
    cp = run.checkpoints.get()
    assert cp.status == CheckpointStatus.APPROVED and cp.decided_by is None
    assert [e.action for e in cp.events.all()][-3:] == ["expired", "approved", "resumed"]
    approved = cp.events.get(action="approved")
    assert approved.data["edits_not_applied"] == ["draft"] and "without the unapproved edits" in approved.note


def test_on_timeout_approve_applies_edits_an_approval_attests_to(people, registered_pipelines):
    sent = register_timed(registered_pipelines, "approve", approvals_required=2)
    run = start("timed-approve", {}, user=people.alice)
    cp = review.edit(run.checkpoints.get(), people.bob, {"draft": "edited, then approved"})
    review.approve(cp, people.carol)  # carol approves the edited draft; the second approval never comes
    assert review.expire_due(now=timezone.now() + LATER) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and sent == ["edited, then approved"]
    assert run.checkpoints.get().events.get(action="approved", actor=None).data["edits_applied"] == ["draft"]


def test_on_timeout_escalate_reassigns_then_the_second_deadline_rejects(people, registered_pipelines):
    register_timed(registered_pipelines, "escalate", escalate_to_group="managers")
    run = start("timed-escalate", {}, user=people.alice)
    cp = run.checkpoints.get()
    review.claim(cp, people.bob)
    first_deadline = cp.expires_at
    assert review.expire_due(now=first_deadline + timedelta(seconds=1)) == 1
    cp.refresh_from_db()
    assert cp.status == CheckpointStatus.PENDING and cp.escalated and cp.claimed_by is None
    assert list(cp.assigned_groups.values_list("name", flat=True)) == ["managers"]
    assert cp.expires_at > first_deadline
    assert cp.events.get(action="escalated").data["to_group"] == "managers"
    # a manager may now decide; an editor may not
    assert review.can_review(cp, people.dave) and not review.can_review(cp, people.bob)
    assert cp.expires_at is not None
    assert review.expire_due(now=cp.expires_at + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    cp.refresh_from_db()
    assert (cp.status, run.status) == (CheckpointStatus.EXPIRED, RunStatus.REJECTED)


def test_on_timeout_fail(people, registered_pipelines):
    register_timed(registered_pipelines, "fail")
    run = start("timed-fail", {}, user=people.alice)
    review.expire_due(now=timezone.now() + LATER)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "Review of step 'draft' timed out"
    assert [e.action for e in run.events.all()][-2:] == ["expired", "run_failed"]


def test_stepkit_expire_command(people, registered_pipelines):
    register_timed(registered_pipelines, "reject")
    run = start("timed-reject", {}, user=people.alice)
    cp = run.checkpoints.get()
    cp.expires_at = timezone.now() - timedelta(minutes=1)
    cp.save(update_fields=["expires_at"])
    out = StringIO()
    call_command("stepkit_expire", stdout=out)
    assert "1 checkpoint(s)" in out.getvalue()
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED
