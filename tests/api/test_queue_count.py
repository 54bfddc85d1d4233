"""The queue's ``count``: each checkpoint the user may see once, whatever its row shows or the filters join."""

import pytest

from stepkit_django import review
from tests.api.test_api import API, client_for, paused

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


def test_the_count_is_the_checkpoints_not_the_rows_of_their_names(people):
    runs = paused(people, 5)
    first, second, decided = (run.checkpoints.get() for run in runs[:3])
    review.claim(first, people.bob)
    review.claim(second, people.carol)
    review.approve(decided, people.carol)
    page = client_for(people.bob).get(f"{API}/checkpoints/?page_size=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["results"][0]["claimed_by"]["username"] == "bob"
    pending = client_for(people.bob).get(f"{API}/checkpoints/?status=pending").json()
    assert pending["count"] == 4 and len(pending["results"]) == 4


def test_an_item_assigned_to_the_reviewer_and_their_group_counts_once(people):
    runs = paused(people, 3)  # assigned to the editors, bob's group
    for run in runs[:2]:
        run.checkpoints.get().assigned_users.add(people.bob)
    page = client_for(people.bob).get(f"{API}/checkpoints/?assigned_to=me&page_size=1").json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["next"]
    assert client_for(people.dave).get(f"{API}/checkpoints/").json()["count"] == 0
