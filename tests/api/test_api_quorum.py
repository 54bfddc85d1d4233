"""The API with a per-group quorum: progress per group, and refusals as 403 and 409 that change nothing."""

import pytest
from rest_framework.test import APIClient

from stepkit_django import Review, start, stepkit
from stepkit_django.models import Approval, Checkpoint

pytestmark = pytest.mark.django_db

API = "/api/stepkit"


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def paused(registered_pipelines, people):
    registered_pipelines(
        stepkit("signed").step(
            "contract",
            lambda c: {"n": 1},
            review=Review(approvals_required={"legal": 1, "finance": 1}, assign_to_user="bob"),
        )
    )
    return start("signed", {}, user=people.alice).checkpoints.get()


def approve(user, cp):
    return client_for(user).post(f"{API}/checkpoints/{cp.pk}/approve/", {}, format="json")


def test_the_queue_and_the_detail_show_each_groups_progress(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    answer = approve(signers.lena, cp)
    assert answer.status_code == 200, answer.content
    assert answer.json()["approvals_by_group"] == [
        {"group": "legal", "given": 1, "required": 1, "met": True},
        {"group": "finance", "given": 0, "required": 1, "met": False},
    ]
    listed = client_for(signers.fiona).get(f"{API}/checkpoints/").json()["results"]
    assert [row["approvals_by_group"][1]["given"] for row in listed] == [0]
    assert approve(signers.fiona, cp).json()["status"] == "approved"


def test_a_second_approval_from_a_met_group_is_a_409_that_changes_nothing(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    approve(signers.lena, cp)
    version = Checkpoint.objects.get(pk=cp.pk).version
    refused = approve(signers.lars, cp)
    assert refused.status_code == 409
    assert "legal already gave the approvals it needs" in refused.json()["detail"]
    assert Approval.objects.count() == 1 and Checkpoint.objects.get(pk=cp.pk).version == version


def test_a_reviewer_in_none_of_the_groups_gets_a_403(registered_pipelines, signers):
    cp = paused(registered_pipelines, signers)
    refused = approve(signers.bob, cp)
    assert refused.status_code == 403
    assert "needs approvals from legal, finance" in refused.json()["detail"]
    assert not Approval.objects.exists()


def test_the_pipeline_lists_the_groups_and_counts(registered_pipelines, signers):
    paused(registered_pipelines, signers)
    body = client_for(signers.root).get(f"{API}/pipelines/signed/").json()
    (step,) = [s for s in body["all_steps"] if s["review"]]
    assert step["review"]["approvals_required"] == 2
    assert step["review"]["approvals_by_group"] == [
        {"group": "legal", "required": 1},
        {"group": "finance", "required": 1},
    ]
