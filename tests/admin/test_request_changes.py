"""The review page's Request changes: a required comment, a step to run again from, the revision history."""

import pytest

from stepkit_django import Review, start, stepkit
from stepkit_django.models import Checkpoint, PipelineRun
from tests.admin.test_review_page import as_the_browser_sends, messages_of, page, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(people, client):
    people.bob.is_staff = True
    people.bob.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


@pytest.fixture
def cp(registered_pipelines, people):
    def draft(ctx):
        notes = (ctx.get("review") or {}).get("comment")
        return {"draft": "Hello" + (f" ({notes})" if notes else "")}

    registered_pipelines(
        stepkit("admin-letters")
        .step("outline", lambda c: {"outline": 1})
        .step("draft", draft, review=Review(editable=["draft"], max_revisions=1))
        .step("send", lambda c: {"sent": True})
    )
    return start("admin-letters", {}, user=people.alice).checkpoints.get()


def test_the_review_page_offers_request_changes_and_the_steps_to_run_again_from(bob, cp):
    response = bob.get(page(cp))
    html = response.content.decode()
    assert 'value="request_changes"' in html and "Request changes" in html
    assert [value for value, _label in response.context["form"].fields["to_step"].choices] == ["outline", "draft"]


def test_request_changes_without_a_comment_shows_the_error_at_the_comment_box(bob, cp):
    form = bob.get(page(cp)).context["form"]
    response = post(bob, cp, "request_changes", as_the_browser_sends(form))
    assert response.context["form"].errors["comment"] == ["Say what should change: the comment is required."]
    assert "The decision was refused; see the errors below." in messages_of(response)
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_request_changes_sends_the_run_back_and_the_new_revision_shows_the_history(bob, cp):
    form = bob.get(page(cp)).context["form"]
    data = {**as_the_browser_sends(form), "comment": "Warmer, please", "to_step": "outline"}
    response = post(bob, cp, "request_changes", data)
    assert any(m.startswith("Changes requested on") for m in messages_of(response))
    assert Checkpoint.objects.get(pk=cp.pk).status == "changes_requested"
    assert PipelineRun.objects.get().status == "paused"
    again = Checkpoint.objects.get(status="pending")
    html = bob.get(page(again)).content.decode()
    assert 'id="revisions"' in html and "Warmer, please" in html
    # max_revisions=1: the one request was made; only approve or reject remain
    assert 'value="request_changes"' not in html and 'id="no-more-revisions"' in html


def test_a_request_past_the_limit_says_why_in_a_message(bob, cp, people):
    from stepkit_django import review

    review.request_changes(cp, people.bob, "Once")
    again = Checkpoint.objects.get(status="pending")
    form = bob.get(page(again)).context["form"]
    response = post(bob, again, "request_changes", {**as_the_browser_sends(form), "comment": "Twice"})
    assert any("approve or reject" in m for m in messages_of(response))
    assert Checkpoint.objects.get(pk=again.pk).status == "pending"
