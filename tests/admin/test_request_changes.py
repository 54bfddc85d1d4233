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


@pytest.fixture
def redrafted(registered_pipelines, people):
    """Revision 2 rewrites the body (which holds markup) after the notes; the title is a schema title."""

    def draft(ctx):
        notes = (ctx.get("review") or {}).get("comment")
        body = "Hello <b>Ann</b>, your order ships today." if notes else "Hello <b>Ann</b>, your order ships soon."
        return {"body": body, "sign": "Bob"}

    schema = {"type": "object", "properties": {"body": {"title": "Letter text"}}}
    registered_pipelines(stepkit("admin-redrafts").step("draft", draft, review=Review(schema=schema)))
    start("admin-redrafts", {}, user=people.alice)
    from stepkit_django import review

    review.request_changes(Checkpoint.objects.get(status="pending"), people.bob, "Say when")
    return Checkpoint.objects.get(status="pending")


def test_the_history_shows_what_the_next_revision_changed_word_by_word(bob, redrafted):
    response = bob.get(page(redrafted))
    html = response.content.decode()
    (earlier,) = response.context["revisions"]
    assert [(row.key, row.label) for row in earlier["changes"]] == [("body", "Letter text")]
    assert earlier["changed"] == "Letter text"
    assert '<p class="stepkit-revision-changed" id="revision-1-changed">Revision 2 changed Letter text.</p>' in html
    # the changed words only, removed and added, each announced; the markup in the data is text
    assert (
        '<del><span class="visually-hidden">[removed: </span>soon<span class="visually-hidden"> end of change]' in html
    )
    assert (
        '<ins><span class="visually-hidden">[added: </span>today<span class="visually-hidden"> end of change]' in html
    )
    assert "Hello &lt;b&gt;Ann&lt;/b&gt;" in html and "<b>Ann</b>" not in html
    assert "Letter text, as revision 2 changed it:" in html
    assert "sign" not in [row.key for row in earlier["changes"]]  # unchanged keys are not listed


def test_a_revision_that_changed_nothing_says_so(bob, registered_pipelines, people):
    from stepkit_django import review

    registered_pipelines(stepkit("admin-same").step("draft", lambda c: {"body": "Same"}, review=Review()))
    start("admin-same", {}, user=people.alice)
    review.request_changes(Checkpoint.objects.get(status="pending"), people.bob, "Again")
    html = bob.get(page(Checkpoint.objects.get(status="pending"))).content.decode()
    assert "Revision 2 changed none of the data." in html


def test_the_history_leaves_out_a_revision_of_another_group(client, registered_pipelines, people):
    from stepkit_django import review

    def draft(ctx):
        team = "editors" if (ctx.get("review") or {}).get("comment") else "managers"
        return {"team": team, "plan": "Meet in Paris" if team == "editors" else "Meet in Zanzibar"}

    registered_pipelines(
        stepkit("admin-teams").step("draft", draft, review=Review(assign_to_group=lambda c: c["team"]))
    )
    start("admin-teams", {}, user=people.alice)
    review.request_changes(Checkpoint.objects.get(status="pending"), people.dave, "Editors, take it")
    again = Checkpoint.objects.get(status="pending")
    people.bob.is_staff = True
    people.bob.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    response = client.get(page(again))
    html = response.content.decode()
    assert response.context["revisions"] == [] and 'id="revisions"' not in html
    assert "Zanzibar" not in html  # (the notes are in revision 2's own data: its steps read them)
    client.force_login(people.root)
    root_html = client.get(page(again)).content.decode()
    assert "[removed: </span>Zanzibar" in root_html  # in a removal, for those who may see it


def test_the_review_page_refuses_an_edit_of_an_earlier_reviews_choice_naming_the_key(bob, registered_pipelines, people):
    from stepkit_django import review

    registered_pipelines(
        stepkit("admin-choose-then-check")
        .step("draft", lambda c: {"text": "Hello"}, review=Review(choices={"a": "A", "b": "B"}, choice_key="route"))
        .step("check", lambda c: {"checked": True}, review=Review(decision_key="verdict"))  # any key editable
    )
    start("admin-choose-then-check", {}, user=people.alice)
    review.approve(Checkpoint.objects.get(status="pending"), people.carol, choice="b")
    check = Checkpoint.objects.get(status="pending")
    form = bob.get(page(check)).context["form"]
    sent = as_the_browser_sends(form)
    sent["override_data"] = sent["override_data"].replace('"b"', '"a"')
    assert '"route": "a"' in sent["override_data"]
    response = post(bob, check, "edit", sent)
    assert response.context["form"].errors["override_data"] == [
        "route: This value is a reviewer's choice: it is chosen when approving; it cannot be edited."
    ]
    assert Checkpoint.objects.get(pk=check.pk).override_data == {}
