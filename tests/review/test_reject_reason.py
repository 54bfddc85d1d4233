"""``Review(require_reject_reason=True)``: a rejection says why, or nothing happens."""

import pytest
from rest_framework.test import APIClient

from stepkit_django import InvalidDecision, Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """The API responses here are checked against the OpenAPI schema (tests/conftest.py)."""


def paused(registered_pipelines, people, **options):
    registered_pipelines(stepkit("reasons").step("pay", lambda c: {"amount": 12500}, review=Review(**options)))
    return start("reasons", {}, user=people.alice).checkpoints.get()


@pytest.mark.parametrize("comment", ["", "   \n "])
def test_a_rejection_without_the_required_reason_is_refused_and_changes_nothing(registered_pipelines, people, comment):
    cp = paused(registered_pipelines, people, require_reject_reason=True)
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count())
    with pytest.raises(InvalidDecision) as refused:
        review.reject(cp, people.bob, comment)
    assert list(refused.value.errors) == ["comment"]
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_a_rejection_with_the_reason_is_recorded_with_it(registered_pipelines, people):
    cp = paused(registered_pipelines, people, require_reject_reason=True)
    decided = review.reject(cp, people.bob, "  The payee's bank details changed last week. ")
    assert decided.status == "rejected" and decided.comment == "The payee's bank details changed last week."
    assert AuditEvent.objects.get(action="rejected").note == decided.comment


def test_without_the_option_a_reason_is_optional(registered_pipelines, people):
    cp = paused(registered_pipelines, people)
    assert review.reject(cp, people.bob).status == "rejected"


def test_the_api_answers_400_with_the_comment_field_error(registered_pipelines, people):
    cp = paused(registered_pipelines, people, require_reject_reason=True)
    client = APIClient()
    client.force_authenticate(people.bob)
    response = client.post(f"/api/stepkit/checkpoints/{cp.pk}/reject/", {"comment": ""}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["comment"]
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"
    response = client.post(f"/api/stepkit/checkpoints/{cp.pk}/reject/", {"comment": "Wrong payee"}, format="json")
    assert response.status_code == 200 and response.json()["comment"] == "Wrong payee"


def test_the_option_must_be_a_boolean():
    with pytest.raises(TypeError):
        Review(require_reject_reason="yes")
