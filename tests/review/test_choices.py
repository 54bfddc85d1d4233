"""``Review(choices=...)``: a reviewer picks one of several outcomes, and the run goes that way."""

import pytest

from stepkit_django import InvalidDecision, InvalidOverride, Review, review, start, stepkit, when
from stepkit_django.describe import describe_pipeline
from stepkit_django.exceptions import ReviewPermissionDenied
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.reviewing.trail import trail_rows
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db

ACTIONS = {"publish": "Publish now", "schedule": "Schedule for Monday", "archive": "Archive"}


def moderation(**options):
    """A post reviewed with choices, then routed on the choice (``action``) by a branch."""
    options = {"choices": ACTIONS, "choice_key": "action", **options}
    return (
        stepkit("choosing")
        .step("draft", lambda c: {"text": "Hello"}, review=Review(**options))
        .branch_on(
            "route",
            when(lambda c: c["action"] == "publish", lambda b: b.step("publish", lambda c: {"status": "published"})),
            when(lambda c: c["action"] == "schedule", lambda b: b.step("plan", lambda c: {"status": "scheduled"})),
            when(lambda c: c["action"] == "archive", lambda b: b.step("archive", lambda c: {"status": "archived"})),
        )
    )


def paused(registered_pipelines, people, pipeline=None, **options):
    registered_pipelines(pipeline or moderation(**options))
    return start("choosing", {}, user=people.alice).checkpoints.get()


def unchanged(cp):
    return list(Checkpoint.objects.values()), list(PipelineRun.objects.values()), AuditEvent.objects.count()


@pytest.mark.parametrize(("choice", "status"), [("publish", "published"), ("schedule", "scheduled")])
def test_the_choice_is_written_at_the_choice_key_and_the_branch_routes_on_it(
    registered_pipelines, people, choice, status
):
    cp = paused(registered_pipelines, people)
    decided = review.approve(cp, people.bob, choice=choice)
    assert decided.status == CheckpointStatus.APPROVED
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert run.status == RunStatus.COMPLETED
    assert run.context["action"] == choice and run.context["status"] == status
    assert AuditEvent.objects.get(action="approved").data["choice"] == choice


@pytest.mark.parametrize("choice", [None, "", "delete", ["publish"]])
def test_approving_without_a_valid_choice_is_refused_with_a_field_error_and_changes_nothing(
    registered_pipelines, people, choice
):
    cp = paused(registered_pipelines, people)
    before = unchanged(cp)
    with pytest.raises(InvalidDecision) as refused:
        review.approve(cp, people.bob, choice=choice)
    assert list(refused.value.errors) == ["choice"]
    assert unchanged(cp) == before


def test_an_unknown_choice_is_named_with_the_choices_on_offer(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    with pytest.raises(InvalidDecision) as refused:
        review.approve(cp, people.bob, choice="delete")
    message = refused.value.errors["choice"][0]
    assert "delete" in message and "“Publish now” (publish)" in message and "“Archive” (archive)" in message


def test_a_review_without_choices_refuses_a_choice(registered_pipelines, people):
    registered_pipelines(stepkit("choosing").step("draft", lambda c: {}, review=Review()))
    cp = start("choosing", {}, user=people.alice).checkpoints.get()
    with pytest.raises(InvalidDecision) as refused:
        review.approve(cp, people.bob, choice="publish")
    assert list(refused.value.errors) == ["choice"]
    assert review.approve(cp, people.bob).status == CheckpointStatus.APPROVED


def test_several_choices_are_written_as_a_list_in_the_declared_order(registered_pipelines, people):
    pipeline = stepkit("choosing").step(
        "draft", lambda c: {}, review=Review(choices=ACTIONS, choice_key="actions", multiple=True)
    )
    cp = paused(registered_pipelines, people, pipeline)
    review.approve(cp, people.bob, choice=["archive", "publish", "archive"])
    assert PipelineRun.objects.get(pk=cp.run_id).context["actions"] == ["publish", "archive"]


@pytest.mark.parametrize("choice", [None, [], ["publish", "delete"]])
def test_several_choices_need_at_least_one_known_one(registered_pipelines, people, choice):
    pipeline = stepkit("choosing").step("draft", lambda c: {}, review=Review(choices=ACTIONS, multiple=True))
    cp = paused(registered_pipelines, people, pipeline)
    before = unchanged(cp)
    with pytest.raises(InvalidDecision) as refused:
        review.approve(cp, people.bob, choice=choice)
    assert list(refused.value.errors) == ["choices"]
    assert unchanged(cp) == before


def test_the_choice_key_defaults_to_choice(registered_pipelines, people):
    pipeline = stepkit("choosing").step("draft", lambda c: {}, review=Review(choices={"yes": "Yes", "no": "No"}))
    cp = paused(registered_pipelines, people, pipeline)
    review.approve(cp, people.bob, choice="no")
    assert PipelineRun.objects.get(pk=cp.run_id).context["choice"] == "no"


def test_the_reviewer_cannot_type_the_choice_as_an_edit(registered_pipelines, people):
    cp = paused(registered_pipelines, people)  # editable=None: any key, but not the choice's
    before = unchanged(cp)
    with pytest.raises(InvalidOverride) as refused:
        review.edit(cp, people.bob, {"action": "delete"})
    assert list(refused.value.errors) == ["action"]
    with pytest.raises(InvalidOverride):
        review.approve(cp, people.bob, {"action": "delete"}, choice="publish")
    assert unchanged(cp) == before


def test_edits_and_a_choice_go_together(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    review.approve(cp, people.bob, {"text": "Hello, world"}, choice="archive")
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert (run.context["text"], run.context["action"], run.context["status"]) == (
        "Hello, world",
        "archive",
        "archived",
    )


def test_with_a_quorum_every_approval_makes_the_same_choice(registered_pipelines, people):
    cp = paused(registered_pipelines, people, approvals_required=2)
    review.approve(cp, people.bob, choice="schedule")
    before = unchanged(cp)
    with pytest.raises(InvalidDecision) as refused:
        review.approve(cp, people.carol, choice="publish")
    assert list(refused.value.errors) == ["choice"] and "“Schedule for Monday”" in refused.value.errors["choice"][0]
    assert unchanged(cp) == before
    review.approve(cp, people.carol, choice="schedule")
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert run.status == RunStatus.COMPLETED and run.context["status"] == "scheduled"


def test_an_edit_that_voids_the_approvals_voids_their_choice_too(registered_pipelines, people):
    cp = paused(registered_pipelines, people, approvals_required=2)
    review.approve(cp, people.bob, choice="schedule")
    review.approve(cp, people.carol, {"text": "Rewritten"}, choice="publish")  # bob's approval is void
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING
    with pytest.raises(InvalidDecision):
        review.approve(cp, people.bob, choice="schedule")  # carol's stands now
    review.approve(cp, people.bob, choice="publish")
    assert PipelineRun.objects.get(pk=cp.run_id).context["status"] == "published"


def test_the_permission_rules_still_come_first(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.eve, choice="publish")  # no review permission
    with pytest.raises(ReviewPermissionDenied):
        review.approve(cp, people.alice, choice="publish")  # started the run: four-eyes


def test_the_trail_says_what_was_chosen(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    review.approve(cp, people.bob, choice="archive")
    row = next(row for row in trail_rows(cp.events.all(), people.bob) if row.event.action == "approved")
    assert row.sentence == "Approved by bob, choosing “Archive”"
    assert not {key for key, _value in row.rest} & {"choice", "choice_labels"}


def test_the_checkpoint_keeps_the_choices_it_was_created_with_in_order(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    assert cp.review["choices"] == [{"key": key, "label": label} for key, label in ACTIONS.items()]
    assert (cp.review["choice_key"], cp.review["multiple"]) == ("action", False)
    described = describe_pipeline(moderation())["all_steps"][0]["review"]
    assert described["choices"] == cp.review["choices"]


@pytest.mark.parametrize(
    "options",
    [
        {"choices": {}},
        {"choices": ["publish", "archive"]},
        {"choices": {"": "Nothing"}},
        {"choices": {"publish": ""}},
        {"choices": {"publish": 1}},
        {"choices": {1: "One"}},
        {"choices": ACTIONS, "choice_key": ""},
        {"choices": ACTIONS, "multiple": "yes"},
        {"multiple": True},
        {"choices": ACTIONS, "choice_key": "action", "editable": ["action"]},
        {"choices": ACTIONS, "on_timeout": "approve", "timeout": __import__("datetime").timedelta(days=1)},
    ],
)
def test_choices_are_checked_when_declared(options):
    with pytest.raises((TypeError, ValueError)):
        Review(**options)
