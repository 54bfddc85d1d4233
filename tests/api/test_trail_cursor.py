"""``GET events/`` walks the audit trail by cursor: every event once, in order, whatever the page size."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from stepkit_django import start
from stepkit_django.models import AuditEvent
from stepkit_django.status import AuditAction
from tests.api.test_api import API, EMAIL, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


@pytest.fixture
def trail(people):
    """A run of alice's with 12 more events, 7 of them written in the same microsecond (a tie)."""
    run = start("email-approval", EMAIL, user=people.alice)
    at = timezone.now() + timedelta(minutes=1)
    for n in range(12):
        AuditEvent.objects.create(
            run=run,
            pipeline_name=run.pipeline_name,
            action=AuditAction.EDITED,
            actor=people.bob,
            timestamp=at if n < 7 else at + timedelta(seconds=n),
            note=f"event {n}",
        )
    return run


def expected_order():
    return list(AuditEvent.objects.order_by("timestamp", "id").values_list("pk", flat=True))


def walk(client, url, link="next"):
    """Every page from ``url`` on, following ``link``: the ids in the order the pages gave them."""
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert "count" not in body
        ids = [event["id"] for event in body["results"]]
        seen += ids if link == "next" else list(reversed(ids))
        url, pages = body[link], pages + 1
    return seen, pages


@pytest.mark.parametrize("size", [1, 3, 5, 50])
def test_following_next_gives_every_event_once_in_time_order(people, trail, size):
    ids, pages = walk(client_for(people.root), f"{API}/events/?page_size={size}")
    assert ids == expected_order()
    assert pages == -(-len(ids) // size)


def test_previous_walks_back_to_the_first_page(people, trail):
    client = client_for(people.root)
    url = f"{API}/events/?page_size=3"
    last: dict = {}
    while url:  # to the last page
        last = client.get(url).json()
        url = last["next"]
    assert last["previous"]
    back, _ = walk(client, last["previous"], link="previous")
    # Newest to oldest: every event before the last page, once.
    assert back[::-1] == expected_order()[: -len(last["results"])]


def test_newest_first_with_ordering(people, trail):
    ids, _ = walk(client_for(people.root), f"{API}/events/?ordering=-timestamp&page_size=4")
    assert ids == list(reversed(expected_order()))


def test_filters_apply_on_every_page(people, trail):
    ids, _ = walk(client_for(people.root), f"{API}/events/?action=edited&page_size=5")
    edits = AuditEvent.objects.filter(action="edited").order_by("timestamp", "id")
    assert ids == list(edits.values_list("pk", flat=True)) and len(ids) == 12


def test_the_trail_is_what_the_user_may_see(people, trail):
    # bob reviews the run's checkpoint (his group's), alice started it, dave sees neither.
    bob, _ = walk(client_for(people.bob), f"{API}/events/")
    alice, _ = walk(client_for(people.alice), f"{API}/events/")
    assert bob == alice == expected_order()
    assert client_for(people.dave).get(f"{API}/events/").json() == {"next": None, "previous": None, "results": []}


def cursor(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "value",
    ["not-base64!", cursor("p=yesterday"), cursor("o=-1"), cursor("p=2026-13-45T00:00:00Z")],
)
def test_a_cursor_the_api_did_not_give_is_a_400_on_cursor(people, trail, value):
    response = client_for(people.root).get(f"{API}/events/", {"cursor": value})
    assert response.status_code == 400
    assert list(response.json()) == ["cursor"]


@pytest.mark.parametrize("size", ["0", "201", "x", "9" * 5000])
def test_an_unusable_page_size_is_a_400(people, trail, size):
    response = client_for(people.root).get(f"{API}/events/", {"page_size": size})
    assert response.status_code == 400 and list(response.json()) == ["page_size"]


def test_a_runs_own_events_keep_numbered_pages(people, trail):
    body = client_for(people.alice).get(f"{API}/runs/{trail.pk}/events/?page_size=5").json()
    assert body["count"] == AuditEvent.objects.filter(run=trail).count() and len(body["results"]) == 5
