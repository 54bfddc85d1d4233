"""Working through the queue: the next item after a decision, "Review next", and what the messages say."""

import pytest
from django.urls import reverse

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Checkpoint

pytestmark = pytest.mark.django_db

QUEUE = "/admin/stepkit_django/checkpoint/"
REVIEW_NEXT = "/admin/stepkit_django/checkpoint/review-next/"


@pytest.fixture
def bob(people, client):
    for user in (people.bob, people.carol, people.alice):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


def pay(people, payee, *, approvals=1):
    return start(f"pay{approvals}", {"payee": payee}, user=people.alice).checkpoints.get()


@pytest.fixture
def pipelines(registered_pipelines):
    for required in (1, 2):
        registered_pipelines(
            stepkit(f"pay{required}").step(
                "check",
                lambda c: {"ok": True},
                review=Review(title="Pay {payee}", approvals_required=required, editable=[]),
            )
        )


def page(cp):
    return reverse("admin:stepkit_django_checkpoint_change", args=[cp.pk])


def decide(client, cp, action, comment=""):
    return client.post(page(cp), {"_action": action, "expected_version": cp.version, "comment": comment})


def messages_after(client, response):
    return [str(m) for m in client.get(response["Location"]).context["messages"]]


def test_after_an_approval_the_reviewer_lands_on_the_next_item_oldest_first(people, bob, pipelines):
    first, second, third = (pay(people, name) for name in ("ACME", "Globex", "Initech"))
    response = decide(bob, first, "approve")
    assert response.status_code == 302 and response["Location"] == page(second)
    assert messages_after(bob, response) == ["Approved “Pay ACME”: the run continues."]
    response = decide(bob, Checkpoint.objects.get(pk=third.pk), "reject", "Duplicate")
    assert response["Location"] == page(second)  # the oldest one still waiting
    assert messages_after(bob, response) == ["Rejected “Pay Initech”: the run will not continue."]


def test_with_nothing_else_waiting_the_reviewer_stays_on_the_decided_item(people, bob, pipelines):
    only = pay(people, "ACME")
    response = decide(bob, only, "approve")
    assert response["Location"] == page(only)
    assert messages_after(bob, response) == [
        "Approved “Pay ACME”: the run continues.",
        "Nothing else is waiting for you.",
    ]


def test_a_partial_approval_says_where_the_quorum_stands(people, bob, client, pipelines):
    cp = pay(people, "Globex", approvals=2)
    response = decide(bob, cp, "approve")
    assert messages_after(bob, response)[0] == "Approved “Pay Globex” — 1 of 2, waiting for one more."
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_the_next_item_skips_what_the_reviewer_cannot_decide_now(people, bob, pipelines):
    mine = pay(people, "ACME")
    claimed = pay(people, "Claimed")
    review.claim(claimed, people.carol)
    approved_already = pay(people, "Quorum", approvals=2)
    review.approve(approved_already, people.bob)
    free = pay(people, "Free")
    html = bob.get(page(mine)).content.decode()
    assert f'href="{page(free)}" id="next-item"' in html


def test_review_next_claims_the_oldest_free_item_and_opens_it(people, bob, pipelines):
    older, newer = pay(people, "ACME"), pay(people, "Globex")
    review.claim(older, people.carol)
    response = bob.post(REVIEW_NEXT)
    assert response.status_code == 302 and response["Location"] == page(newer)
    assert Checkpoint.objects.get(pk=newer.pk).claimed_by == people.bob
    assert messages_after(bob, response)[0].startswith("You claimed “Pay Globex”")


def test_review_next_keeps_to_the_queues_pipeline_filter(people, bob, pipelines):
    pay(people, "ACME")  # pay1, older
    two = pay(people, "Globex", approvals=2)
    response = bob.post(REVIEW_NEXT, {"pipeline_name": "pay2"})
    assert response["Location"] == page(two)


def test_review_next_with_nothing_waiting_goes_back_to_the_queue(people, bob):
    response = bob.post(REVIEW_NEXT)
    assert response["Location"] == QUEUE
    assert messages_after(bob, response) == ["Nothing is waiting for you to review."]


def test_review_next_is_a_post_only_and_for_reviewers(people, client, bob, pipelines):
    assert bob.get(REVIEW_NEXT).status_code == 405
    people.eve.is_staff = True
    people.eve.save()
    client.force_login(people.eve)  # staff without the review permission
    assert client.post(REVIEW_NEXT).status_code == 403


def test_the_queue_offers_review_next_with_its_filter(people, bob, pipelines):
    html = bob.get(QUEUE + "?pipeline_name=pay2").content.decode()
    assert f'action="{REVIEW_NEXT}"' in html and 'name="pipeline_name" value="pay2"' in html


def test_review_next_with_a_filter_the_database_cannot_take_is_not_an_error(people, bob, pipelines):
    pay(people, "ACME")
    response = bob.post(REVIEW_NEXT, {"pipeline_name": "pay1\x00", "step": "x" * 500})
    assert response.status_code == 302  # the filters are ignored: the oldest free item opens
    assert Checkpoint.objects.filter(claimed_by=people.bob).count() == 1


@pytest.mark.parametrize("version", ["5.0", "", "1e3", "99999999999999999999"])
def test_a_decision_without_the_version_the_page_showed_is_refused(people, bob, pipelines, version):
    cp = pay(people, "ACME")
    response = bob.post(page(cp), {"_action": "approve", "expected_version": version, "comment": ""})
    assert messages_after(bob, response) == ["This page is out of date: reload it and try again."]
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"
