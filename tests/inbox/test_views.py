"""The reviewer inbox: its pages for users who are not staff, through the same services as the admin."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone, translation

from stepkit_django import Review, start, stepkit, when
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db

INBOX = "/review/"
EMAIL = {"message": "secret contents", "customer": "Ada", "to": "ada@example.com"}


def page(cp):
    return f"{INBOX}{cp.pk}/"


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def html_of(response):
    return response.content.decode()


def state():
    return list(Checkpoint.objects.values()), list(PipelineRun.objects.values()), AuditEvent.objects.count()


@pytest.fixture
def bob(people, client):
    assert not people.bob.is_staff  # the inbox asks for no staff status
    client.force_login(people.bob)
    return client


def email_run(people, **data):
    return start("email-approval", {**EMAIL, **data}, user=people.alice)


def form_data(cp, **extra):
    return {"expected_version": cp.version, "comment": "", "edit__subject": cp.context["subject"],
            "edit__body": cp.context["body"], **extra}  # fmt: skip


# -- access ---------------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_projects_login_page(client, people):
    cp = email_run(people).checkpoints.get()
    for url in (INBOX, page(cp), f"{INBOX}decisions/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(f"/accounts/login/?next={url}")
    assert client.post(f"{INBOX}next/").status_code == 302
    assert Checkpoint.objects.get(pk=cp.pk).claimed_by is None


@override_settings(LOGIN_URL="/elsewhere/login/")
def test_the_login_redirect_follows_login_url(client, people):
    assert client.get(INBOX)["Location"].startswith("/elsewhere/login/")


def test_a_user_without_a_review_permission_gets_a_clear_403_page(client, people):
    cp = email_run(people).checkpoints.get()
    client.force_login(people.eve)  # in the editors group, without the permission
    for url in (INBOX, page(cp), f"{INBOX}decisions/"):
        response = client.get(url)
        assert response.status_code == 403
        assert "You cannot use the review inbox" in html_of(response) and "secret" not in html_of(response)
    before = state()
    assert client.post(page(cp), form_data(cp, _action="approve")).status_code == 403
    assert client.post(f"{INBOX}next/").status_code == 403
    assert state() == before


def test_the_login_page_logs_a_non_staff_reviewer_into_the_inbox(client, people):
    response = client.post("/accounts/login/?next=/review/", {"username": "bob", "password": "pw", "next": "/review/"})
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert client.get(INBOX).status_code == 200


def test_logging_out_is_a_post(bob):
    assert bob.get(f"{INBOX}logout/").status_code == 405
    response = bob.post(f"{INBOX}logout/")
    assert response.status_code == 302
    assert bob.get(INBOX).status_code == 302  # logged out: to the login page


def test_every_page_refuses_to_be_framed(bob, people):
    cp = email_run(people).checkpoints.get()
    for response in (bob.get(INBOX), bob.get(page(cp)), bob.get(f"{INBOX}decisions/"), bob.post(f"{INBOX}next/")):
        assert response["X-Frame-Options"] == "DENY"


def test_every_post_needs_the_csrf_token(people):
    cp = email_run(people).checkpoints.get()
    client = Client(enforce_csrf_checks=True)
    client.force_login(people.bob)
    before = state()
    assert client.post(page(cp), form_data(cp, _action="approve")).status_code == 403
    assert client.post(f"{INBOX}next/").status_code == 403
    assert client.post(f"{INBOX}logout/").status_code == 403
    assert state() == before
    # with the page's token, the same POST decides
    html = html_of(client.get(page(cp)))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(page(cp), form_data(cp, _action="approve", csrfmiddlewaretoken=token))
    assert response.status_code == 302
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED


def test_an_item_outside_the_queue_is_a_404_page_that_refuses_framing_too(bob, people, registered_pipelines):
    registered_pipelines(stepkit("theirs").step("s", lambda c: {"n": 1}, review=Review(assign_to_group="managers")))
    theirs = start("theirs", {}, user=people.alice).checkpoints.get()
    for pk in (theirs.pk, "8d5c8b33-5a4e-4d55-9c7e-2f2f8f3a4b11"):  # another group's, and none at all
        response = bob.get(f"{INBOX}{pk}/")
        assert response.status_code == 404 and response["X-Frame-Options"] == "DENY"
        assert "This item is not in your queue" in html_of(response) and "theirs" not in html_of(response)


def test_the_login_page_refuses_to_be_framed(client):
    assert client.get("/accounts/login/")["X-Frame-Options"] == "DENY"


def test_no_page_is_kept_in_a_cache(bob, people):
    cp = email_run(people).checkpoints.get()
    for response in (bob.get(INBOX), bob.get(page(cp)), bob.get(f"{INBOX}decisions/")):
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@override_settings(
    MIDDLEWARE=[m for m in __import__("tests.settings", fromlist=["MIDDLEWARE"]).MIDDLEWARE if "Csrf" not in m]
)
def test_the_csrf_check_holds_without_the_projects_middleware(people):
    cp = email_run(people).checkpoints.get()
    client = Client(enforce_csrf_checks=True)
    client.force_login(people.bob)
    before = state()
    assert client.post(page(cp), form_data(cp, _action="approve")).status_code == 403
    assert client.post(f"{INBOX}next/").status_code == 403
    assert state() == before


def test_with_any_key_editable_data_that_is_not_an_object_is_refused_not_dropped(bob, people, registered_pipelines):
    registered_pipelines(stepkit("anykey").step("s", lambda c: {"amount": 10}, review=Review()))
    cp = start("anykey", {}, user=people.alice).checkpoints.get()
    before = state()
    data = {
        "expected_version": cp.version,
        "comment": "",
        "override_data": '[{"amount": 999999}]',
        "_action": "approve",
    }
    response = bob.post(page(cp), data)
    assert response.status_code == 200 and "The data must be a JSON object" in html_of(response)
    assert state() == before


# -- the queue -------------------------------------------------------------------------------------


def test_the_queue_lists_titles_and_summaries_oldest_first(bob, people, registered_pipelines):
    registered_pipelines(
        stepkit("invoices").step(
            "check",
            lambda c: {"n": c["n"]},
            review=Review(title=lambda c: f"Invoice {c['n']}", summary=lambda c: {"Payee": f"ACME {c['n']}"}),
        )
    )
    first = start("invoices", {"n": 1}, user=people.alice).checkpoints.get()
    second = start("invoices", {"n": 2}, user=people.alice).checkpoints.get()
    Checkpoint.objects.filter(pk=second.pk).update(created_at=first.created_at + timedelta(minutes=5))
    response = bob.get(INBOX)
    html = html_of(response)
    assert html.index("Invoice 1") < html.index("Invoice 2")
    assert "ACME 1" in html and "Payee" in html and f'href="{page(first)}"' in html
    assert [row["checkpoint"].pk for row in response.context["rows"]] == [first.pk, second.pk]


def test_the_queue_filters(bob, people):
    mine = email_run(people).checkpoints.get()
    Checkpoint.objects.filter(pk=mine.pk).update(title="for bob")
    mine.assigned_groups.clear()
    mine.assigned_users.add(people.bob)
    groups = email_run(people).checkpoints.get()
    Checkpoint.objects.filter(pk=groups.pk).update(
        title="for editors", claimed_by=people.bob, claimed_at=timezone.now()
    )
    late = email_run(people).checkpoints.get()
    Checkpoint.objects.filter(pk=late.pk).update(title="late", expires_at=timezone.now() - timedelta(hours=1))

    def listed(show):
        return {row["checkpoint"].pk for row in bob.get(INBOX, {"show": show}).context["rows"]}

    assert listed("") == {mine.pk, groups.pk, late.pk}
    assert listed("mine") == {mine.pk}
    assert listed("groups") == {groups.pk, late.pk}
    assert listed("claimed") == {groups.pk}
    assert listed("unclaimed") == {mine.pk, late.pk}
    assert listed("overdue") == {late.pk}
    assert listed("nonsense") == listed("")


def test_the_queue_searches_by_title(bob, people):
    cp = email_run(people).checkpoints.get()
    Checkpoint.objects.filter(pk=cp.pk).update(title="Refund for Ada")
    other = email_run(people).checkpoints.get()
    Checkpoint.objects.filter(pk=other.pk).update(title="Welcome letter")
    assert [r["checkpoint"].pk for r in bob.get(INBOX, {"q": "refund"}).context["rows"]] == [cp.pk]
    response = bob.get(INBOX, {"q": "nothing like it"})
    assert response.context["rows"] == [] and "Nothing in your queue matches this search." in html_of(response)
    response = bob.get(INBOX, {"q": "x" * 500 + "\x00"})
    assert response.status_code == 200 and "Searched for the first 200 characters only." in messages_of(response)


def test_the_queue_is_paginated(bob, people):
    for _ in range(27):
        email_run(people)
    first = bob.get(INBOX)
    assert len(first.context["rows"]) == 25 and "Page 1 of 2" in html_of(first)
    assert 'href="?page=2"' in html_of(first)
    second = bob.get(INBOX, {"page": "2"})
    assert len(second.context["rows"]) == 2
    assert bob.get(INBOX, {"page": "not a number"}).status_code == 200


def test_review_next_claims_the_oldest_item_and_opens_it(bob, people):
    oldest = email_run(people).checkpoints.get()
    email_run(people)
    response = bob.post(f"{INBOX}next/")
    assert response.status_code == 302 and response["Location"] == page(oldest)
    assert Checkpoint.objects.get(pk=oldest.pk).claimed_by == people.bob
    assert bob.get(f"{INBOX}next/").status_code == 405  # a GET claims nothing


def test_review_next_says_when_nothing_waits(bob, people):
    response = bob.post(f"{INBOX}next/", follow=True)
    assert response.redirect_chain[-1][0] == INBOX
    assert "Nothing is waiting for you to review." in messages_of(response)


# -- the review page -----------------------------------------------------------------------------


def test_the_review_page_shows_the_data_typed_fields_and_the_decisions(bob, people):
    cp = email_run(people).checkpoints.get()
    response = bob.get(page(cp))
    html = html_of(response)
    assert response.status_code == 200
    assert "Hello Ada, thanks for writing." in html and 'id="review-data"' in html
    assert 'name="edit__subject"' in html and '<textarea name="edit__body"' not in html  # one line: an input
    for value in ("edit", "approve", "reject"):
        assert f'value="{value}"' in html
    assert 'id="audit-trail"' in html and "paused" in html.lower()
    assert response.context["base_template"] == "stepkit_django/inbox/base.html"


def test_edits_show_as_a_word_diff_and_approving_resumes_the_run(bob, people):
    cp = email_run(people).checkpoints.get()
    response = bob.post(page(cp), form_data(cp, _action="edit", edit__body="Hello Ada,\r\nthanks a lot for writing."))
    assert response.status_code == 302
    cp.refresh_from_db()
    assert cp.override_data == {"body": "Hello Ada,\nthanks a lot for writing."}
    html = html_of(bob.get(page(cp)))
    assert "<ins>" in html and "Edited" in html
    response = bob.post(
        page(cp), form_data(cp, _action="approve", edit__body=cp.effective_context["body"]), follow=True
    )
    assert "Approved “Review: email-approval / generate”: the run continues." in messages_of(response) or any(
        m.startswith("Approved") for m in messages_of(response)
    )
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED
    assert PipelineRun.objects.get(pk=cp.run_id).status == RunStatus.COMPLETED


def test_after_a_decision_the_next_item_opens(bob, people):
    cp = email_run(people).checkpoints.get()
    following = email_run(people).checkpoints.get()
    response = bob.post(page(cp), form_data(cp, _action="reject", comment="No"))
    assert response["Location"] == page(following)
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.REJECTED


def test_an_invalid_edit_is_an_error_at_its_field(bob, people):
    cp = email_run(people).checkpoints.get()
    response = bob.post(page(cp), form_data(cp, _action="approve", edit__subject=""))
    assert response.status_code == 200
    assert response.context["form"].errors["edit__subject"]
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING


def test_a_stale_page_is_a_message_not_an_error(bob, people):
    cp = email_run(people).checkpoints.get()
    response = bob.post(page(cp), form_data(cp, _action="approve", expected_version=cp.version + 5), follow=True)
    assert response.status_code == 200 and messages_of(response)
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING
    response = bob.post(page(cp), form_data(cp, _action="approve", expected_version="x"), follow=True)
    assert "This page is out of date: reload it and try again." in messages_of(response)


def test_the_runs_starter_is_refused_with_a_message(client, people):
    cp = start("email-approval", EMAIL, user=people.carol).checkpoints.get()
    client.force_login(people.carol)
    response = client.post(page(cp), form_data(cp, _action="approve"), follow=True)
    assert response.status_code == 200 and messages_of(response)  # four-eyes: ReviewPermissionDenied as a message
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING


@pytest.fixture
def letters(registered_pipelines, people):
    def draft(ctx):
        notes = (ctx.get("review") or {}).get("comment")
        return {"draft": "Hello" + (f" ({notes})" if notes else "")}

    registered_pipelines(
        stepkit("inbox-letters")
        .step("outline", lambda c: {"outline": 1})
        .step("draft", draft, review=Review(editable=["draft"], max_revisions=2))
        .step("send", lambda c: {"sent": True})
    )
    return start("inbox-letters", {}, user=people.alice).checkpoints.get()


def test_request_changes_needs_a_comment_at_the_comment_box(bob, letters):
    cp = letters
    response = bob.post(page(cp), {"expected_version": cp.version, "comment": "", "edit__draft": "Hello",
                                   "_action": "request_changes"})  # fmt: skip
    assert response.status_code == 200
    assert response.context["form"].errors["comment"] == ["Say what should change: the comment is required."]
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING


def test_request_changes_runs_again_from_the_chosen_step_and_shows_the_revisions(bob, letters):
    cp = letters
    data = {"expected_version": cp.version, "comment": "Warmer", "edit__draft": "Hello", "to_step": "outline",
            "_action": "request_changes"}  # fmt: skip
    response = bob.post(page(cp), data, follow=True)
    assert any(m.startswith("Changes requested on") and "outline" in m for m in messages_of(response))
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.CHANGES_REQUESTED
    again = Checkpoint.objects.get(status=CheckpointStatus.PENDING)
    html = html_of(bob.get(page(again)))
    assert 'id="revisions"' in html and "Warmer" in html and f'href="{page(cp)}"' in html
    assert "Hello (Warmer)" in html


ACTIONS = {"publish": "Publish now", "hide": "Hide"}


def test_choices_are_one_button_each_and_a_button_approves_with_its_choice(bob, people, registered_pipelines):
    registered_pipelines(
        stepkit("inbox-choosing")
        .step("draft", lambda c: {"text": "Hi"}, review=Review(choices=ACTIONS, choice_key="action", editable=[]))
        .branch_on(
            "route",
            when(lambda c: "publish" in c["action"], lambda b: b.step("publish", lambda c: {"status": "published"})),
            when(lambda c: True, lambda b: b.step("other", lambda c: {"status": "not published"})),
        )
    )
    cp = start("inbox-choosing", {}, user=people.alice).checkpoints.get()
    html = html_of(bob.get(page(cp)))
    assert '<button type="submit" name="_choice" value="publish"' in html and ">Hide</button>" in html
    assert 'value="approve"' not in html
    bob.post(page(cp), {"expected_version": cp.version, "comment": "", "_choice": "publish"})
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert run.status == RunStatus.COMPLETED and run.context["status"] == "published"


def test_a_per_group_quorum_shows_its_progress_and_who_cannot_add_an_approval(client, signers, registered_pipelines):
    options = {"approvals_required": {"legal": 1, "finance": 1}, "title": "Sign the lease", "editable": []}
    registered_pipelines(stepkit("inbox-signed").step("contract", lambda c: {"amount": 5000}, review=Review(**options)))
    cp = start("inbox-signed", {}, user=signers.alice).checkpoints.get()
    client.force_login(signers.lena)
    response = client.post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""}, follow=True)
    assert any("waiting for finance" in m for m in messages_of(response))
    client.force_login(signers.lars)  # legal has given its approval
    html = html_of(client.get(page(cp)))
    assert 'id="quorum-refusal"' in html and "legal 1/1" in html and "finance 0/1" in html
    client.force_login(signers.fiona)
    client.post(page(cp), {"_action": "approve", "expected_version": Checkpoint.objects.get(pk=cp.pk).version,
                           "comment": ""})  # fmt: skip
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED


# -- my decisions --------------------------------------------------------------------------------


def test_my_decisions_lists_what_i_decided_newest_first(bob, people):
    first = email_run(people).checkpoints.get()
    second = email_run(people).checkpoints.get()
    untouched = email_run(people).checkpoints.get()
    bob.post(page(first), form_data(first, _action="reject", comment="no"))
    bob.post(page(second), form_data(second, _action="approve"))
    response = bob.get(f"{INBOX}decisions/")
    assert [row["checkpoint"].pk for row in response.context["rows"]] == [second.pk, first.pk]
    assert untouched.pk not in [row["checkpoint"].pk for row in response.context["rows"]]
    assert "Approved" in html_of(response) and "Rejected" in html_of(response)


def test_my_decisions_lists_an_approval_that_waits_for_more(client, signers, registered_pipelines):
    options = {"approvals_required": 2, "editable": []}
    registered_pipelines(stepkit("inbox-two").step("s", lambda c: {"a": 1}, review=Review(**options)))
    cp = start("inbox-two", {}, user=signers.alice).checkpoints.get()
    client.force_login(signers.lena)
    client.post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    assert [row["checkpoint"].pk for row in client.get(f"{INBOX}decisions/").context["rows"]] == [cp.pk]


def test_my_decisions_is_paginated(bob, people):
    for _ in range(26):
        cp = email_run(people).checkpoints.get()
        bob.post(page(cp), form_data(cp, _action="reject", comment="no"))
    assert len(bob.get(f"{INBOX}decisions/").context["rows"]) == 25
    assert len(bob.get(f"{INBOX}decisions/", {"page": 2}).context["rows"]) == 1


# -- another group's items -------------------------------------------------------------------------


def test_items_outside_the_queue_are_404_and_nothing_of_them_shows(client, people, registered_pipelines):
    registered_pipelines(
        stepkit("inbox-finance").step(
            "s", lambda c: {"iban": "DE00 1234"}, review=Review(assign_to_group="managers", title="Pay the landlord")
        )
    )
    theirs = start("inbox-finance", {}, user=people.alice).checkpoints.get()
    mine = email_run(people).checkpoints.get()
    client.force_login(people.bob)
    before = state()
    response = client.get(page(theirs))
    assert response.status_code == 404
    assert "landlord" not in html_of(response) and "DE00" not in html_of(response)
    assert client.post(page(theirs), {"_action": "approve", "expected_version": theirs.version}).status_code == 404
    assert client.get(f"{INBOX}00000000-0000-0000-0000-000000000000/").status_code == 404
    assert state() == before
    urls = (INBOX, f"{INBOX}?show=groups", f"{INBOX}?show=overdue", f"{INBOX}?q=landlord", f"{INBOX}decisions/")
    bodies = [html_of(client.get(url)) for url in (*urls, page(mine))]
    for body in bodies:
        assert "landlord" not in body.replace("?q=landlord", "").replace('value="landlord"', "")
        assert "DE00" not in body and "inbox-finance" not in body and str(theirs.pk) not in body
    assert "1 item waits." in bodies[0]  # the count is of bob's queue only
    dave = Client()
    dave.force_login(people.dave)
    body = html_of(dave.get(INBOX))
    assert "Pay the landlord" in body and "secret contents" not in body and "email-approval" not in body


def test_review_next_never_claims_another_groups_item(client, people, registered_pipelines):
    registered_pipelines(stepkit("inbox-mgr").step("s", lambda c: {"a": 1}, review=Review(assign_to_group="managers")))
    theirs = start("inbox-mgr", {}, user=people.alice).checkpoints.get()
    client.force_login(people.bob)
    response = client.post(f"{INBOX}next/", follow=True)
    assert "Nothing is waiting for you to review." in messages_of(response)
    assert Checkpoint.objects.get(pk=theirs.pk).claimed_by is None


def test_the_runs_starter_without_a_review_permission_sees_their_runs_items(client, people):
    people.alice.user_permissions.add(
        __import__("django.contrib.auth.models", fromlist=["Permission"]).Permission.objects.get(
            codename="add_pipelinerun"
        )
    )
    cp = email_run(people).checkpoints.get()
    other = start("email-approval", EMAIL, user=people.carol).checkpoints.get()
    client.force_login(User.objects.get(pk=people.alice.pk))
    assert [row["checkpoint"].pk for row in client.get(INBOX).context["rows"]] == [cp.pk]
    assert client.get(page(cp)).status_code == 200
    assert client.get(page(other)).status_code == 404


# -- templates and URLs ------------------------------------------------------------------------------


def test_pages_extend_the_base_template_of_the_setting_read_at_request_time(bob, people, settings, tmp_path):
    (tmp_path / "my_base.html").write_text(
        "<!DOCTYPE html><html lang=en><title>t</title><body>MY PROJECT {% block content %}{% endblock %}</body></html>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    cp = email_run(people).checkpoints.get()
    with override_settings(STEPKIT={"INBOX_BASE_TEMPLATE": "my_base.html"}):
        for url in (INBOX, page(cp), f"{INBOX}decisions/"):
            assert "MY PROJECT" in html_of(bob.get(url))
    assert "MY PROJECT" not in html_of(bob.get(INBOX))


def test_the_base_template_has_the_users_name_the_navigation_and_the_css(bob):
    html = html_of(bob.get(INBOX))
    assert 'id="user-name">bob<' in html and "My decisions" in html and "Log out" in html
    assert "/static/stepkit_django/inbox.css" in html and "https://" not in html  # no CDN


def test_get_absolute_url_is_the_inbox_page_when_installed(people):
    cp = email_run(people).checkpoints.get()
    assert cp.get_absolute_url() == f"/review/{cp.pk}/"


@override_settings(ROOT_URLCONF="tests.inbox.admin_only_urls")
def test_get_absolute_url_is_the_admin_page_without_the_inbox(people):
    cp = email_run(people).checkpoints.get()
    assert cp.get_absolute_url() == f"/admin/stepkit_django/checkpoint/{cp.pk}/change/"


def test_the_pages_are_translated(bob, people, settings):
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
                      "django.middleware.locale.LocaleMiddleware")  # fmt: skip
    settings.MIDDLEWARE = middleware
    cp = email_run(people).checkpoints.get()
    try:
        html = html_of(bob.get(INBOX, headers={"accept-language": "fr"}))
        assert "Mes décisions" in html and "Relire le suivant" in html and 'lang="fr"' in html
        html = html_of(bob.get(page(cp), headers={"accept-language": "fr"}))
        assert "Retour à la file" in html and "Rejeter" in html
    finally:
        translation.deactivate()


def test_the_queues_query_count_does_not_grow_with_its_rows(bob, people, django_assert_max_num_queries):
    email_run(people)
    with django_assert_max_num_queries(12) as few:
        bob.get(INBOX)
    for _ in range(20):
        cp = email_run(people).checkpoints.get()
        Checkpoint.objects.filter(pk=cp.pk).update(claimed_by=people.carol, claimed_at=timezone.now())
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(bob.get(INBOX).context["rows"]) == 21
