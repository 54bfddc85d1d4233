"""POST checkpoints/{id}/request-changes/: the reviewer sends the work back through the API."""

import pytest
from rest_framework.test import APIClient

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """The API responses here are checked against the OpenAPI schema (tests/conftest.py)."""


@pytest.fixture
def cp(registered_pipelines, people):
    def draft(ctx):
        notes = (ctx.get("review") or {}).get("comment")
        return {"draft": "Hello" + (f" ({notes})" if notes else "")}

    registered_pipelines(
        stepkit("api-letters")
        .step("outline", lambda c: {"outline": 1})
        .step("draft", draft, review=Review(editable=["outline"], max_revisions=1))
        .step("send", lambda c: {"sent": True})
    )
    return start("api-letters", {}, user=people.alice).checkpoints.get()


def client(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


def url(cp):
    return f"/api/stepkit/checkpoints/{cp.pk}/request-changes/"


def test_requesting_changes_answers_the_decided_checkpoint_and_the_run_pauses_on_a_new_revision(people, cp):
    response = client(people.bob).post(url(cp), {"comment": "Warmer, please"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "changes_requested" and body["comment"] == "Warmer, please"
    assert body["revision"] == 1 and body["revision_of"] is None and body["revisions"] == []
    again = Checkpoint.objects.get(status="pending")
    detail = client(people.bob).get(f"/api/stepkit/checkpoints/{again.pk}/").json()
    assert detail["revision"] == 2 and detail["revision_of"] == str(cp.pk)
    assert [(r["revision"], r["comment"], r["decided_by"]["username"]) for r in detail["revisions"]] == [
        (1, "Warmer, please", "bob")
    ]
    assert detail["context"]["draft"] == "Hello (Warmer, please)"


def test_to_step_and_edits_are_taken(people, cp):
    body = {"comment": "Redo", "to_step": "outline", "override_data": {"outline": 2}}
    assert client(people.bob).post(url(cp), body, format="json").status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).override_data == {"outline": 2}
    assert AuditEvent.objects.get(action="changes_requested").data["to_step"] == "outline"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"comment": ""}, "comment"),
        ({}, "comment"),
        ({"comment": "Again", "to_step": "send"}, "to_step"),
        ({"comment": "Again", "to_step": "nowhere"}, "to_step"),
        ({"comment": "Again", "override_data": {"draft": "x"}}, "override_data"),
    ],
)
def test_bad_input_answers_400_with_the_field_and_changes_nothing(people, cp, body, field):
    response = client(people.bob).post(url(cp), body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"
    assert PipelineRun.objects.get().status == "paused"


def test_after_max_revisions_the_request_answers_409(people, cp):
    assert client(people.bob).post(url(cp), {"comment": "Once"}, format="json").status_code == 200
    again = Checkpoint.objects.get(status="pending")
    response = client(people.bob).post(url(again), {"comment": "Twice"}, format="json")
    assert response.status_code == 409
    assert Checkpoint.objects.get(pk=again.pk).status == "pending"


def test_if_match_is_checked_like_the_other_decisions(people, cp):
    bob = client(people.bob)
    seen = bob.get(f"/api/stepkit/checkpoints/{cp.pk}/")["ETag"]
    review.claim(cp, people.bob)  # a new version since bob loaded it
    stale = bob.post(url(cp), {"comment": "Again"}, format="json", HTTP_IF_MATCH=seen)
    assert stale.status_code == 412
    current = bob.get(f"/api/stepkit/checkpoints/{cp.pk}/")["ETag"]
    assert bob.post(url(cp), {"comment": "Again"}, format="json", HTTP_IF_MATCH=current).status_code == 200


def test_the_starter_gets_403(people, cp):
    response = client(people.alice).post(url(cp), {"comment": "Mine"}, format="json")
    assert response.status_code in (403, 404)
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_each_revision_says_what_the_next_one_changed(people, cp):
    # an edit to null, and the outline runs again
    edited = {"comment": "Warmer, please", "override_data": {"outline": None}, "to_step": "outline"}
    assert client(people.bob).post(url(cp), edited, format="json").status_code == 200
    again = Checkpoint.objects.get(status="pending")
    (earlier,) = client(people.bob).get(f"/api/stepkit/checkpoints/{again.pk}/").json()["revisions"]
    # from the data revision 1 was sent back with (its edit included) to the context revision 2 paused with;
    # the decision key the request wrote is left out
    assert earlier["changes"] == {
        "draft": {"before": "Hello", "after": "Hello (Warmer, please)"},
        "outline": {"before": None, "after": 1},
    }


@pytest.fixture
def teams(registered_pipelines):
    def draft(ctx):
        team = "editors" if (ctx.get("review") or {}).get("comment") else "managers"
        return {"team": team, "plan": f"The {team}' plan"}

    registered_pipelines(stepkit("api-teams").step("draft", draft, review=Review(assign_to_group=lambda c: c["team"])))


def test_a_revision_of_another_group_is_not_listed(people, teams):
    start("api-teams", {}, user=people.alice)
    review.request_changes(Checkpoint.objects.get(status="pending"), people.dave, "Editors, take it")
    again = Checkpoint.objects.get(status="pending")
    body = client(people.bob).get(f"/api/stepkit/checkpoints/{again.pk}/").json()
    assert body["revision"] == 2 and body["revisions"] == []
    assert "managers' plan" not in str(body)
    # the run's starter sees the whole history
    mine = client(people.alice).get(f"/api/stepkit/checkpoints/{again.pk}/").json()
    assert [r["revision"] for r in mine["revisions"]] == [1]
    assert mine["revisions"][0]["changes"]["team"] == {"before": "managers", "after": "editors"}
