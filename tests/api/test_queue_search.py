"""The API's queue: titles and summaries in the list and the detail, and ``?search=``."""

import pytest
from django.test import override_settings

from stepkit_django import Review, start, stepkit

from .test_api import API, client_for

pytestmark = pytest.mark.django_db

PAYMENTS = [
    {"payee": "ACME Ltd", "amount": 1200, "invoice_no": "INV-1", "memo": "spring catalogue"},
    {"payee": "Globex", "amount": 1200, "invoice_no": "INV-2", "memo": "licences"},
]


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


@pytest.fixture
def payments(people, registered_pipelines):
    registered_pipelines(
        stepkit("api-titled").step(
            "check", lambda ctx: {}, review=Review(title="Pay {payee} {amount} EUR", summary=["invoice_no"])
        )
    )
    return [start("api-titled", data, user=people.alice) for data in PAYMENTS]


def titles(response):
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


def test_the_list_and_the_detail_carry_the_title_and_the_summary(people, payments):
    client = client_for(people.root)
    first = client.get(f"{API}/checkpoints/").json()["results"][0]
    assert (first["title"], first["summary"]) == ("Pay ACME Ltd 1200 EUR", {"Invoice no": "INV-1"})
    detail = client.get(f"{API}/checkpoints/{first['id']}/").json()
    assert (detail["title"], detail["summary"]) == ("Pay ACME Ltd 1200 EUR", {"Invoice no": "INV-1"})


def test_a_checkpoint_without_a_review_title_is_titled_by_its_pipeline_and_step(people):
    start("email-approval", {"message": "Hi", "customer": "Ada", "to": "a@example.com"}, user=people.alice)
    [item] = client_for(people.bob).get(f"{API}/checkpoints/").json()["results"]
    assert (item["title"], item["summary"]) == ("Email approval: generate", {})


def test_search_matches_the_title_the_summary_and_the_run_id(people, payments):
    client = client_for(people.root)
    assert titles(client.get(f"{API}/checkpoints/?search=GLOBEX")) == ["Pay Globex 1200 EUR"]
    assert titles(client.get(f"{API}/checkpoints/?search=inv-1")) == ["Pay ACME Ltd 1200 EUR"]
    assert titles(client.get(f"{API}/checkpoints/?search={payments[1].pk}")) == ["Pay Globex 1200 EUR"]
    assert titles(client.get(f"{API}/checkpoints/?search=")) == ["Pay ACME Ltd 1200 EUR", "Pay Globex 1200 EUR"]


def test_search_looks_inside_contexts_only_when_the_setting_says_so(people, payments):
    client = client_for(people.root)
    assert titles(client.get(f"{API}/checkpoints/?search=catalogue")) == []
    with override_settings(STEPKIT={"SEARCH_CONTEXT": True}):
        assert titles(client.get(f"{API}/checkpoints/?search=catalogue")) == ["Pay ACME Ltd 1200 EUR"]


def test_search_combines_with_the_filters_and_claim_next(people, payments):
    client = client_for(people.root)
    assert titles(client.get(f"{API}/checkpoints/?search=globex&status=approved")) == []
    claimed = client.post(f"{API}/checkpoints/claim-next/?search=globex")
    assert claimed.status_code == 200 and claimed.json()["title"] == "Pay Globex 1200 EUR"


def test_a_search_term_over_200_characters_is_a_400_on_the_field(people, payments):
    response = client_for(people.root).get(f"{API}/checkpoints/?search=" + "x" * 201)
    assert response.status_code == 400
    assert "search" in response.json()


def test_the_queue_can_be_ordered_by_title(people, payments):
    client = client_for(people.root)
    assert titles(client.get(f"{API}/checkpoints/?ordering=-title")) == ["Pay Globex 1200 EUR", "Pay ACME Ltd 1200 EUR"]
