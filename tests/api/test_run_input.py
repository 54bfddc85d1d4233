"""POST runs/ against a pipeline's input_schema: 400 with the field errors, nothing started."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from stepkit_django import stepkit
from stepkit_django.models import AuditEvent, PipelineRun

pytestmark = pytest.mark.django_db

API = "/api/stepkit"
SCHEMA = {
    "type": "object",
    "properties": {
        "payee": {"type": "string", "title": "Payee", "minLength": 1},
        "amount": {"type": "integer", "minimum": 1},
    },
    "required": ["payee", "amount"],
}


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


@pytest.fixture
def typed(registered_pipelines):
    return registered_pipelines(stepkit("typed-payments").step("pay", lambda ctx: {"paid": True}), input_schema=SCHEMA)


@pytest.fixture
def starter(people):
    people.bob.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    client = APIClient()
    client.force_authenticate(type(people.bob).objects.get(pk=people.bob.pk))
    return client


def test_input_that_does_not_match_the_schema_is_a_400_per_field_and_starts_nothing(typed, starter):
    body = {"pipeline": "typed-payments", "input": {"amount": "many"}, "idempotency_key": "pay-1"}
    response = starter.post(f"{API}/runs/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"input": {"amount": ["Enter a whole number."], "payee": ["This field is required."]}}
    assert PipelineRun.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_an_error_of_the_input_as_a_whole_is_under_non_field_errors(registered_pipelines, starter):
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    registered_pipelines(stepkit("closed").step("s"), input_schema=schema)
    response = starter.post(f"{API}/runs/", {"pipeline": "closed", "input": {"x": 1}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["input"]) == ["non_field_errors"]
    assert PipelineRun.objects.count() == 0


def test_valid_input_starts_the_run(typed, starter):
    body = {"pipeline": "typed-payments", "input": {"payee": "ACME", "amount": 3}}
    response = starter.post(f"{API}/runs/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["input"] == {"payee": "ACME", "amount": 3}


def test_the_pipeline_description_carries_its_input_schema(typed, starter):
    assert starter.get(f"{API}/pipelines/typed-payments/").json()["input_schema"] == SCHEMA
    described = {p["name"]: p["input_schema"] for p in starter.get(f"{API}/pipelines/").json()}
    assert described["typed-payments"] == SCHEMA
    assert described["payment-approval"] is None


def test_starting_without_the_permission_is_a_403_that_names_it(typed, people):
    client = APIClient()
    client.force_authenticate(people.bob)
    response = client.post(f"{API}/runs/", {"pipeline": "typed-payments", "input": {}}, format="json")
    assert response.status_code == 403
    assert "stepkit_django.add_pipelinerun" in response.json()["detail"]
