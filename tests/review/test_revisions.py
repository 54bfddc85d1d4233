"""Request changes: the reviewer sends the work back with notes, the step redrafts, a new revision waits."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepkit_django import (
    InvalidDecision,
    InvalidOverride,
    ReviewConflict,
    ReviewPermissionDenied,
    otherwise,
    register,
    review,
    revisions,
    start,
    stepkit,
    unregister,
    when,
)
from stepkit_django.exceptions import DecisionKeyCollision
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.review_spec import Review
from stepkit_django.sentences import tell
from stepkit_django.signals import checkpoint_decided
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db
NAMES = itertools.count()


def redraft(calls):
    """A drafting step that rewrites its draft with the reviewer's notes, when there are some."""

    def draft(ctx):
        calls.append(("draft", ctx.get("review")))
        notes = (ctx.get("review") or {}).get("comment")
        return {"draft": f"Dear {ctx['to']}" + (f" ({notes})" if notes else "")}

    return draft


def letters(calls, **options):
    return (
        stepkit("letters")
        .step("outline", lambda c: calls.append(("outline", c.get("review"))) or {"outline": c["to"].upper()})
        .step("draft", redraft(calls), review=Review(**options))
        .step("send", lambda c: calls.append(("send", c.get("review"))) or {"sent": c["draft"]})
    )


@pytest.fixture
def calls(registered_pipelines):
    made = []
    registered_pipelines(letters(made))
    return made


def paused(people):
    run = start("letters", {"to": "Ann"}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    return run.checkpoints.get()


def snapshot():
    return list(Checkpoint.objects.values()), list(PipelineRun.objects.values()), AuditEvent.objects.count()


def test_a_request_for_changes_runs_the_step_again_with_the_notes_and_pauses_for_a_new_revision(people, calls):
    first = paused(people)
    decided = review.request_changes(first, people.bob, "  Say hello first. ")
    assert decided.status == "changes_requested" and decided.comment == "Say hello first."
    assert decided.decided_by == people.bob
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.PAUSED  # paused again at the redrafted step
    second = run.checkpoints.get(status="pending")
    assert second.step == "draft" and second.revision == 2 and second.revision_of == first
    assert second.context["draft"] == "Dear Ann (Say hello first.)"
    feedback = calls[-1][1]
    assert feedback["outcome"] == "changes_requested" and feedback["comment"] == "Say hello first."
    assert feedback["by"] == "bob" and feedback["revision"] == 1 and feedback["at"]
    assert [name for name, _ in calls] == ["outline", "draft", "draft"]  # the outline did not run again


def test_after_the_approval_the_next_step_sees_the_decision_details(people, calls):
    review.approve(paused(people), people.bob, comment="Fine")
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.COMPLETED
    seen = calls[-1][1]
    assert calls[-1][0] == "send"
    assert {k: seen[k] for k in ("outcome", "comment", "by", "revision")} == {
        "outcome": "approved",
        "comment": "Fine",
        "by": "bob",
        "revision": 1,
    }
    assert run.context["review"] == seen


def test_a_revision_approved_completes_the_run_with_the_redraft(people, calls):
    review.request_changes(paused(people), people.bob, "Warmer")
    second = Checkpoint.objects.get(status="pending")
    review.approve(second, people.carol)
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.COMPLETED and run.context["sent"] == "Dear Ann (Warmer)"
    assert run.context["review"]["revision"] == 2 and run.context["review"]["outcome"] == "approved"


def test_the_run_can_go_back_to_an_earlier_step_of_the_same_level(people, calls):
    review.request_changes(paused(people), people.bob, "Start over", to_step="outline")
    assert [name for name, _ in calls] == ["outline", "draft", "outline", "draft"]
    assert calls[-2][1]["comment"] == "Start over"  # the outline, first to run again, reads the notes
    assert Checkpoint.objects.get(status="pending").revision == 2
    event = AuditEvent.objects.get(action="changes_requested")
    assert event.data == {"to_step": "outline", "revision": 1} and event.note == "Start over"
    assert "requested changes" in tell(event, full=True).sentence


def test_a_step_in_the_middle_can_be_the_one_to_run_again(people, registered_pipelines):
    made = []
    registered_pipelines(
        stepkit("three")
        .step("a", lambda c: made.append("a") or {"a": 1})
        .step("b", lambda c: made.append("b") or {"b": 2})
        .step("c", lambda c: made.append("c") or {"c": 3}, review=Review())
    )
    run = start("three", {}, user=people.alice)
    review.request_changes(run.checkpoints.get(), people.bob, "Again from b", to_step="b")
    assert made == ["a", "b", "c", "b", "c"]


@pytest.mark.parametrize(
    ("to_step", "says"),
    [("nope", "is not a step"), ("send", "comes after"), ("outline ", "is not a step")],
)
def test_a_step_the_run_cannot_go_back_to_is_refused_and_changes_nothing(people, calls, to_step, says):
    cp = paused(people)
    before = snapshot()
    with pytest.raises(InvalidDecision) as refused:
        review.request_changes(cp, people.bob, "Again", to_step=to_step)
    assert list(refused.value.errors) == ["to_step"] and says in refused.value.errors["to_step"][0]
    assert "outline, draft" in refused.value.errors["to_step"][0]  # the steps it may go back to
    assert snapshot() == before


def branching():
    return (
        stepkit("branching")
        .step("score", lambda c: {"risk": 1})
        .branch_on(
            "route",
            when(lambda c: c["risk"] == 0, lambda b: b.step("publish", lambda c: {"status": "published"}), name="safe"),
            otherwise(
                lambda b: (
                    b.step("check", lambda c: {"checked": True})
                    .step("hold", lambda c: {"held": c.get("review", {}).get("comment", "")}, review=Review())
                    .step("publish", lambda c: {"status": "published"})
                ),
                name="suspicious",
            ),
        )
    )


def test_inside_a_branch_the_run_goes_back_within_the_branch_only(people, registered_pipelines):
    registered_pipelines(branching())
    cp = start("branching", {}, user=people.alice).checkpoints.get()
    for elsewhere in ("score", "route/safe/publish", "route"):
        with pytest.raises(InvalidDecision) as refused:
            review.request_changes(cp, people.bob, "Again", to_step=elsewhere)
        assert "another part of the pipeline" in refused.value.errors["to_step"][0]
    review.request_changes(cp, people.bob, "Check again", to_step="route/suspicious/check")
    again = Checkpoint.objects.get(status="pending")
    assert again.step == "route/suspicious/hold" and again.context["held"] == "Check again"
    review.approve(again, people.bob)
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.COMPLETED and run.context["status"] == "published"


def test_the_first_step_of_a_branch_can_run_again(people, registered_pipelines):
    registered_pipelines(branching())
    cp = start("branching", {}, user=people.alice).checkpoints.get()
    review.request_changes(cp, people.bob, "Check again", to_step="route/suspicious/check")
    review.request_changes(Checkpoint.objects.get(status="pending"), people.bob, "Hold it", to_step=None)
    assert Checkpoint.objects.get(status="pending").revision == 3


def test_the_first_step_of_the_pipeline_can_run_again(people, registered_pipelines):
    made = []
    registered_pipelines(
        stepkit("single").step("only", lambda c: made.append(c.get("review")) or {"x": 1}, review=Review())
    )
    run = start("single", {"n": 1}, user=people.alice)
    review.request_changes(run.checkpoints.get(), people.bob, "Once more")
    assert made[0] is None and made[1]["comment"] == "Once more"
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and run.context["n"] == 1


@pytest.mark.parametrize("comment", ["", "  \n", None])
def test_a_request_for_changes_without_a_comment_is_refused_and_changes_nothing(people, calls, comment):
    cp = paused(people)
    before = snapshot()
    with pytest.raises(InvalidDecision) as refused:
        review.request_changes(cp, people.bob, comment)
    assert list(refused.value.errors) == ["comment"]
    assert snapshot() == before


def test_after_max_revisions_requests_only_approve_or_reject_remain(people, registered_pipelines):
    made = []
    registered_pipelines(letters(made, max_revisions=2))
    review.request_changes(paused(people), people.bob, "One")
    review.request_changes(Checkpoint.objects.get(status="pending"), people.bob, "Two")
    third = Checkpoint.objects.get(status="pending")
    assert third.revision == 3
    before = snapshot()
    with pytest.raises(ReviewConflict, match="2 times"):
        review.request_changes(third, people.bob, "Three")
    assert snapshot() == before
    review.reject(third, people.bob)
    assert PipelineRun.objects.get().status == RunStatus.REJECTED


def test_max_revisions_zero_allows_no_request(people, registered_pipelines):
    registered_pipelines(letters([], max_revisions=0))
    with pytest.raises(ReviewConflict):
        review.request_changes(paused(people), people.bob, "Again")


def test_the_starter_may_not_request_changes_on_their_own_run_four_eyes(people, calls):
    people.alice.user_permissions.add(people.review_permission)
    from django.contrib.auth.models import User

    alice = User.objects.get(pk=people.alice.pk)
    cp = paused(people)
    before = snapshot()
    with pytest.raises(ReviewPermissionDenied):
        review.request_changes(cp, alice, "Mine")
    with pytest.raises(ReviewPermissionDenied):
        review.request_changes(cp, people.eve, "No permission")
    assert snapshot() == before


def test_a_decided_checkpoint_cannot_have_changes_requested(people, calls):
    cp = paused(people)
    review.request_changes(cp, people.bob, "Once")
    with pytest.raises(ReviewConflict, match="already requested changes"):
        review.request_changes(cp, people.carol, "Twice")
    with pytest.raises(ReviewConflict):
        review.approve(cp, people.carol)


def test_a_stale_version_is_refused(people, calls):
    cp = paused(people)
    with pytest.raises(ReviewConflict):
        review.request_changes(cp, people.bob, "Again", expected_version=cp.version + 1)
    assert review.request_changes(cp, people.bob, "Again", expected_version=cp.version).status == "changes_requested"


def test_edits_given_with_the_request_are_what_the_steps_run_again_with(people, registered_pipelines):
    made = []
    registered_pipelines(letters(made, editable=["to"]))
    review.request_changes(paused(people), people.bob, "Wrong name", override_data={"to": "Anne"})
    decided = Checkpoint.objects.get(status="changes_requested")
    assert decided.override_data == {"to": "Anne"}
    assert Checkpoint.objects.get(status="pending").context["draft"] == "Dear Anne (Wrong name)"
    assert AuditEvent.objects.filter(action="edited").count() == 1


def test_checkpoint_decided_is_sent_with_changes_requested(people, calls):
    seen = []

    def receiver(sender, checkpoint, run, decision, user, **kwargs):
        seen.append((decision, user.username, checkpoint.status))

    checkpoint_decided.connect(receiver)
    try:
        review.request_changes(paused(people), people.bob, "Again")
    finally:
        checkpoint_decided.disconnect(receiver)
    assert seen == [("changes_requested", "bob", "changes_requested")]


def test_input_holding_the_decision_key_is_refused_before_anything_is_written(people, calls):
    with pytest.raises(DecisionKeyCollision) as refused:
        start("letters", {"to": "Ann", "review": "mine"}, user=people.alice)
    assert list(refused.value.errors) == ["review"]
    assert not PipelineRun.objects.exists()


def test_a_step_that_returns_the_decision_key_fails_the_run_loudly(people, registered_pipelines):
    registered_pipelines(
        stepkit("clash").step("a", lambda c: {"review": "my own"}).step("b", lambda c: {}, review=Review())
    )
    run = start("clash", {}, user=people.alice)
    assert run.status == RunStatus.FAILED
    assert "DecisionKeyCollision" in run.error and "review" in run.error


def test_a_step_that_overwrites_the_decision_after_a_decision_fails_the_run(people, registered_pipelines):
    registered_pipelines(
        stepkit("clash2").step("a", lambda c: {}, review=Review()).step("b", lambda c: {"review": {"mine": 1}})
    )
    review.approve(start("clash2", {}, user=people.alice).checkpoints.get(), people.bob)
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.FAILED and "DecisionKeyCollision" in run.error


def test_another_decision_key_leaves_review_free_for_the_pipeline(people, registered_pipelines):
    made = []
    registered_pipelines(
        stepkit("custom")
        .step("a", lambda c: {"review": "a book review"}, review=Review(decision_key="verdict"))
        .step("b", lambda c: made.append(c["verdict"]) or {})
    )
    run = start("custom", {"review": "given"}, user=people.alice)
    review.approve(run.checkpoints.get(), people.bob)
    assert made[0]["outcome"] == "approved"
    assert PipelineRun.objects.get().context["review"] == "a book review"


def test_the_review_arguments_are_checked():
    with pytest.raises(TypeError):
        Review(decision_key="")
    with pytest.raises(ValueError):
        Review(max_revisions=-1)
    with pytest.raises(ValueError):
        Review(max_revisions=True)


# -- the property ------------------------------------------------------------------------


def story(name, to_step):
    """outline → draft (reviewed) → polish: each a pure function of the input and the latest notes."""

    def notes(ctx):
        return (ctx.get("review") or {}).get("comment", "")

    return (
        stepkit(name)
        .step("outline", lambda c: {"outline": f"{c['topic']}|{notes(c) if to_step == 'outline' else ''}"})
        .step("draft", lambda c: {"draft": f"{c['outline']}/{notes(c)}"}, review=Review(max_revisions=4))
        .step("polish", lambda c: {"final": c["draft"].upper(), "length": len(c["draft"])})
    )


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    topic=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    comments=st.lists(st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=12), max_size=4),
    to_step=st.sampled_from(["outline", "draft"]),
)
def test_k_requests_for_changes_then_approval_end_as_the_uninterrupted_run_fed_the_last_notes(
    people, topic, comments, to_step
):
    comments = [c for c in comments if c.strip()]
    name = f"revision-property-{next(NAMES)}"
    register(story(name, to_step))
    try:
        run = start(name, {"topic": topic}, user=people.alice)
        for comment in comments:
            review.request_changes(run.checkpoints.get(status="pending"), people.bob, comment, to_step=to_step)
        review.approve(run.checkpoints.get(status="pending"), people.bob)
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED
        feedback = {"review": {"comment": comments[-1].strip()}} if comments else {}
        expected = story(f"{name}-plain", to_step).run({"topic": topic, **feedback})
        expected.pop("review", None)
        assert {k: v for k, v in run.context.items() if k != "review"} == expected
        assert run.checkpoints.count() == len(comments) + 1
    finally:
        unregister(name)


def test_a_step_sent_back_for_changes_is_reviewed_again_even_if_its_condition_no_longer_holds(
    people, registered_pipelines
):
    registered_pipelines(
        stepkit("big-payments")
        .step(
            "check",
            lambda c: {"amount": c["amount"]},
            review=Review(when=lambda c: c["amount"] > 10_000, editable=["amount"], approvals_required=2),
        )
        .step("pay", lambda c: {"paid": c["amount"]})
    )
    run = start("big-payments", {"amount": 12_500}, user=people.alice)
    cp = run.checkpoints.get()
    # one reviewer lowers the amount under the threshold while sending it back: no quorum has approved it
    review.request_changes(cp, people.bob, "Split it", override_data={"amount": 9_999})
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and "paid" not in run.context
    assert run.checkpoints.filter(status=CheckpointStatus.PENDING).count() == 1


def test_a_request_for_changes_may_not_send_the_run_back_past_an_earlier_review(people, registered_pipelines):
    registered_pipelines(
        stepkit("two-reviews")
        .step("prepare", lambda c: {"amount": 100}, review=Review(editable=["amount"]))
        .step("pay", lambda c: {"paid": c["amount"]})
        .step("report", lambda c: {"report": "done"}, review=Review(editable=["amount"]))
    )
    run = start("two-reviews", {}, user=people.alice)
    review.approve(run.checkpoints.get(), people.bob)
    second = run.checkpoints.get(status=CheckpointStatus.PENDING)
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count())
    with pytest.raises(InvalidDecision) as refused:  # pay would run again with data the first review never saw
        review.request_changes(second, people.carol, "Pay less", to_step="pay", override_data={"amount": 5})
    assert refused.value.errors["to_step"][0].endswith("the run can go back to: prepare, report.")
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before
    # back to the earlier review itself is allowed: it pauses again and sees the data
    review.request_changes(second, people.carol, "Pay less", to_step="prepare", override_data={"amount": 5})
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and run.current_step == "prepare"
    assert run.checkpoints.get(status=CheckpointStatus.PENDING).step == "prepare"


def test_the_decision_key_cannot_be_written_as_an_edit(people, registered_pipelines):
    registered_pipelines(stepkit("free-edits").step("draft", lambda c: {"body": "x"}, review=Review()))
    cp = start("free-edits", {}, user=people.alice).checkpoints.get()  # editable=None: any key
    forged = {"review": {"outcome": "approved", "by": "the-boss"}}
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count())
    with pytest.raises(InvalidOverride) as refused:
        review.edit(cp, people.bob, forged)
    assert list(refused.value.errors) == ["review"]
    with pytest.raises(InvalidOverride):
        review.approve(cp, people.bob, forged)
    with pytest.raises(InvalidOverride):
        review.rerun_from(cp, people.alice, forged)
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_a_revision_reopened_after_its_deadline_stays_that_revision_with_its_history(people, registered_pipelines):
    from datetime import timedelta

    from django.utils import timezone

    made = []
    registered_pipelines(letters(made, timeout=timedelta(hours=1), on_timeout="fail"))
    first = paused(people)
    review.request_changes(first, people.bob, "Warmer, please")
    second = Checkpoint.objects.get(run_id=first.run_id, status=CheckpointStatus.PENDING)
    assert (second.revision, second.revision_of_id) == (2, first.pk)
    review.expire_due(now=timezone.now() + timedelta(hours=2))
    run = review.retry_run(PipelineRun.objects.get(pk=first.run_id), people.root)
    reopened = run.checkpoints.get(status=CheckpointStatus.PENDING)
    assert reopened.pk != second.pk
    assert (reopened.revision, reopened.revision_of_id) == (2, first.pk)  # not a first draft again
    assert [earlier.checkpoint.pk for earlier in revisions.history(reopened, people.bob)] == [first.pk]
