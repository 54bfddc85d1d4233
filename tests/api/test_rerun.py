"""POST checkpoints/{id}/rerun/: a new run from a checkpoint, for the run's starter and run managers."""

import pytest
from django.contrib.auth.models import Permission, User

from stepkit_django import review
from stepkit_django.models import Checkpoint, PipelineRun

from .test_api import API, client_for, paused, url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


def approved(people):
    run = paused(people)
    cp = run.checkpoints.get()
    review.approve(cp, people.bob)
    return run, cp


def test_the_starter_reruns_from_a_checkpoint_and_gets_the_new_run(people):
    original, cp = approved(people)
    response = client_for(people.alice).post(url(cp, "rerun"), {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != str(original.pk)
    assert body["forked_from"] == str(cp.pk)
    assert body["status"] == "completed"
    assert body["started_by"]["username"] == "alice"
    assert client_for(people.alice).get(f"{API}/runs/{original.pk}/").json()["forked_from"] is None


def test_a_run_manager_reruns_with_edits_and_the_new_run_waits_for_their_review(people):
    _, cp = approved(people)
    people.dave.user_permissions.add(Permission.objects.get(codename="manage_pipelinerun"))
    dave = User.objects.get(pk=people.dave.pk)
    response = client_for(dave).post(url(cp, "rerun"), {"override_data": {"subject": "Again"}}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "paused"
    new = PipelineRun.objects.get(pk=response.json()["id"])
    assert new.checkpoints.get().override_data == {"subject": "Again"}


def test_a_reviewer_who_did_not_start_the_run_gets_403_and_nothing_is_created(people):
    _, cp = approved(people)
    runs = PipelineRun.objects.count()
    response = client_for(people.bob).post(url(cp, "rerun"), {}, format="json")
    assert response.status_code == 403
    assert "started the run" in response.json()["detail"]
    assert PipelineRun.objects.count() == runs


def test_someone_who_cannot_see_the_run_gets_404(people):
    _, cp = approved(people)
    assert client_for(people.dave).post(url(cp, "rerun"), {}, format="json").status_code == 404


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"override_data": {"to": "eve@example.com"}}, {"override_data": {"to": ["This key is not editable."]}}),
        ({"override_data": {"subject": ""}}, {"override_data": {"subject": []}}),
        ({"override_data": ["subject"]}, {"override_data": []}),
    ],
)
def test_bad_edits_get_400_with_the_errors_per_key_and_nothing_is_created(people, body, error):
    _, cp = approved(people)
    counts = (PipelineRun.objects.count(), Checkpoint.objects.count())
    response = client_for(people.alice).post(url(cp, "rerun"), body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert errors.keys() == error.keys()
    if isinstance(error["override_data"], dict):
        assert errors["override_data"].keys() == error["override_data"].keys()
        for key, messages in error["override_data"].items():
            assert all(any(m in got for got in errors["override_data"][key]) for m in messages)
    assert (PipelineRun.objects.count(), Checkpoint.objects.count()) == counts
