"""The API of ``Review(choices=...)``: the detail offers the choices, approve takes one, pipelines list them."""

import pytest
from rest_framework.test import APIClient

from stepkit_django import Review, start, stepkit, when
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun

pytestmark = pytest.mark.django_db

API = "/api/stepkit"
ACTIONS = {"publish": "Publish now", "hide": "Hide", "escalate": "Escalate"}


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def paused(registered_pipelines, people, **options):
    registered_pipelines(
        stepkit("choosing")
        .step("draft", lambda c: {"text": "Hello"}, review=Review(choices=ACTIONS, choice_key="action", **options))
        .branch_on(
            "route",
            when(lambda c: "publish" in c["action"], lambda b: b.step("publish", lambda c: {"status": "published"})),
            when(lambda c: True, lambda b: b.step("other", lambda c: {"status": "not published"})),
        )
    )
    return start("choosing", {}, user=people.alice).checkpoints.get()


def approve(user, cp, body):
    return client_for(user).post(f"{API}/checkpoints/{cp.pk}/approve/", body, format="json")


def test_the_detail_offers_the_choices_in_order(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    body = client_for(people.bob).get(f"{API}/checkpoints/{cp.pk}/").json()
    assert body["choices"] == [{"key": key, "label": label} for key, label in ACTIONS.items()]
    assert (body["choice_key"], body["multiple_choices"]) == ("action", False)


def test_a_checkpoint_without_choices_offers_none(registered_pipelines, people):
    registered_pipelines(stepkit("plain").step("draft", lambda c: {}, review=Review()))
    cp = start("plain", {}, user=people.alice).checkpoints.get()
    body = client_for(people.bob).get(f"{API}/checkpoints/{cp.pk}/").json()
    assert (body["choices"], body["choice_key"], body["multiple_choices"]) == ([], None, False)


def test_approving_with_a_choice_routes_the_run(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    response = approve(people.bob, cp, {"choice": "publish"})
    assert response.status_code == 200 and response.json()["status"] == "approved"
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert (run.context["action"], run.context["status"]) == ("publish", "published")


@pytest.mark.parametrize("body", [{}, {"choice": None}, {"choice": ""}, {"choice": "delete"}])
def test_a_missing_or_unknown_choice_is_a_400_with_a_field_error_and_changes_nothing(
    registered_pipelines, people, body
):
    cp = paused(registered_pipelines, people)
    before = list(Checkpoint.objects.values()), AuditEvent.objects.count()
    response = approve(people.bob, cp, body)
    assert response.status_code == 400 and list(response.json()) == ["choice"]
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_several_choices_are_sent_as_choices(registered_pipelines, people):
    cp = paused(registered_pipelines, people, multiple=True)
    assert client_for(people.bob).get(f"{API}/checkpoints/{cp.pk}/").json()["multiple_choices"] is True
    response = approve(people.bob, cp, {"choices": ["delete"]})
    assert response.status_code == 400 and list(response.json()) == ["choices"]
    response = approve(people.bob, cp, {"choices": ["escalate", "publish"]})
    assert response.status_code == 200
    assert PipelineRun.objects.get(pk=cp.run_id).context["action"] == ["publish", "escalate"]


def test_choice_and_choices_together_are_refused(registered_pipelines, people):
    cp = paused(registered_pipelines, people, multiple=True)
    response = approve(people.bob, cp, {"choice": "publish", "choices": ["hide"]})
    assert response.status_code == 400 and list(response.json()) == ["choices"]


def test_the_choice_cannot_be_sent_as_an_edit(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    response = approve(people.bob, cp, {"choice": "publish", "override_data": {"action": "hide"}})
    assert response.status_code == 400 and list(response.json()["override_data"]) == ["action"]


def test_a_later_review_may_not_edit_an_earlier_reviews_choice_or_decision(registered_pipelines, people):
    registered_pipelines(
        stepkit("choose-then-check")
        .step("draft", lambda c: {"text": "Hello"}, review=Review(choices=ACTIONS, choice_key="action"))
        .step("check", lambda c: {"checked": True}, review=Review(decision_key="verdict"))  # any key editable
    )
    start("choose-then-check", {}, user=people.alice)
    assert approve(people.bob, Checkpoint.objects.get(status="pending"), {"choice": "hide"}).status_code == 200
    check = Checkpoint.objects.get(status="pending")
    forged = {"action": "publish", "review": {"outcome": "approved", "by": "the-boss"}, "text": "Hi"}
    response = client_for(people.carol).post(
        f"{API}/checkpoints/{check.pk}/edit/", {"override_data": forged}, format="json"
    )
    assert response.status_code == 400
    errors = response.json()["override_data"]
    assert sorted(errors) == ["action", "review"]
    assert "choice" in errors["action"][0] and "decisions" in errors["review"][0]
    assert Checkpoint.objects.get(pk=check.pk).override_data == {}  # not even the allowed key was saved


def test_disagreeing_approvals_of_a_quorum_are_a_400(registered_pipelines, people):
    cp = paused(registered_pipelines, people, approvals_required=2)
    assert approve(people.bob, cp, {"choice": "hide"}).status_code == 200
    response = approve(people.carol, cp, {"choice": "publish"})
    assert response.status_code == 400 and "“Hide”" in response.json()["choice"][0]


def test_the_permission_rules_answer_before_the_choice(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    assert approve(people.alice, cp, {"choice": "publish"}).status_code == 403  # four-eyes: she started it
    assert approve(people.alice, cp, {}).status_code == 403  # not told about the choice before she may decide
    assert approve(people.eve, cp, {"choice": "publish"}).status_code == 404  # not in her queue


def test_the_pipeline_lists_the_choices_of_its_steps(registered_pipelines, people):
    paused(registered_pipelines, people)
    body = client_for(people.bob).get(f"{API}/pipelines/choosing/").json()
    draft = next(step for step in body["all_steps"] if step["name"] == "draft")
    assert draft["review"]["choices"] == [{"key": key, "label": label} for key, label in ACTIONS.items()]
    assert draft["review"]["choice_key"] == "action"
    publish = next(step for step in body["all_steps"] if step["name"] == "route/case-1/publish")
    assert publish["review"] is None
