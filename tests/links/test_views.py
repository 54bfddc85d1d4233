"""The link pages: GET shows a confirmation and writes nothing; the POST decides as the link's user, once."""

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from stepkit_django import review
from stepkit_django.models import AuditEvent, Checkpoint

from .conftest import logged_in, whole_database

pytestmark = pytest.mark.django_db

LOCALE = "django.middleware.locale.LocaleMiddleware"


def link_mode(settings):
    settings.STEPKIT = {**settings.STEPKIT, "ACTION_LINKS_LOGIN": "link"}


def test_get_shows_the_confirmation_and_changes_nothing_at_all(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    bob = logged_in(people.bob)
    before = whole_database()
    with CaptureQueriesContext(connection) as queries:
        response = bob.get(url)
        bob.head(url)
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []  # not one INSERT, UPDATE or DELETE
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pay ACME &amp; Co 120 EUR" in html  # the title
    assert '<th scope="row">Payee</th><td>ACME &amp; Co</td>' in html  # the summary
    assert "line one\nline two" in html  # the effective data
    assert "You are about to decide: <strong>Approve</strong>" in html
    assert 'name="csrfmiddlewaretoken"' in html and "csrftoken" in response.cookies
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert whole_database() == before  # not a claim, not an event, not a session write


def test_post_decides_as_the_links_user_audited_via_link(paused, people):
    cp = paused()
    bob = logged_in(people.bob)
    response = bob.post(review.action_url(cp, people.bob, "approve"), {"comment": "Fine by me"})
    assert response.status_code == 200 and "Decided" in response.content.decode()
    cp = Checkpoint.objects.get(pk=cp.pk)
    assert (cp.status, cp.decided_by, cp.comment) == ("approved", people.bob, "Fine by me")
    approved = AuditEvent.objects.get(checkpoint=cp, action="approved")
    assert approved.actor == people.bob and approved.data["via"] == "link"
    assert approved.note == "Fine by me"
    resumed = AuditEvent.objects.get(checkpoint=cp, action="resumed")
    assert resumed.data["via"] == "link"
    # The steps that ran after it are the system's: not said to come through the link.
    assert not AuditEvent.objects.filter(actor__isnull=True, data__has_key="via").exists()
    assert cp.run.__class__.objects.get(pk=cp.run_id).status == "completed"


def test_the_admins_decisions_say_no_channel(paused, people):
    cp = paused()
    review.approve(cp, people.bob)
    assert "via" not in AuditEvent.objects.get(action="approved").data


def test_a_second_use_is_refused_as_used_and_changes_nothing(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "reject")
    bob = logged_in(people.bob)
    assert bob.post(url).status_code == 200
    before = whole_database()
    for response in (bob.get(url), bob.post(url)):
        assert response.status_code == 410
        html = response.content.decode()
        assert "This link was used already" in html
        assert "already used or the item changed since the email" in html
        assert 'data-reason="used"' in html
    assert whole_database() == before


def test_a_link_made_before_another_change_is_stale(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    review.edit(cp, people.carol, {"amount": 999})
    bob = logged_in(people.bob)
    before = whole_database()
    response = bob.post(url)
    assert response.status_code == 410 and 'data-reason="stale"' in response.content.decode()
    assert "already used or the item changed since the email" in response.content.decode()
    assert whole_database() == before


def test_a_foreign_logged_in_user_is_refused_and_told_nothing_of_the_item(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    for client in (logged_in(people.carol), logged_in(people.dave)):
        before = whole_database()
        for response in (client.get(url), client.post(url)):
            html = response.content.decode()
            assert response.status_code == 403 and "This link is not yours" in html
            assert "ACME" not in html and str(cp.pk) not in html and "bob" not in html
        assert whole_database() == before


def test_a_tampered_link_gets_400_and_tells_nothing(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    token = url.rstrip("/").rsplit("/", 1)[-1]
    bob = logged_in(people.bob)
    before = whole_database()
    changed = url.replace(token, token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb"))
    response = bob.post(changed)
    assert response.status_code == 400 and "This link is not valid" in response.content.decode()
    assert "ACME" not in response.content.decode()
    assert whole_database() == before


@pytest.mark.parametrize(
    "token", ["x", "%3A", "a:b", "e30:1:2", "eyJjIjoxfQ:1aa:zz", "A" * 3000, "%C3%A9t%C3%A9", "..", "%00"]
)
def test_malformed_tokens_never_fail_the_server(people, token):
    client = logged_in(people.bob)
    client.raise_request_exception = True
    for response in (client.get(f"/review/link/{token}/"), client.post(f"/review/link/{token}/")):
        assert response.status_code in (400, 404)


def test_an_expired_link_gets_410(paused, people, monkeypatch):
    from datetime import timedelta
    from types import SimpleNamespace

    from django.utils import timezone

    from stepkit_django import links

    cp = paused()
    url = review.action_url(cp, people.bob, "approve", max_age=10)
    later = timezone.now() + timedelta(seconds=11)
    monkeypatch.setattr(
        links, "timezone", SimpleNamespace(now=lambda: later, get_current_timezone=timezone.get_current_timezone)
    )
    response = logged_in(people.bob).post(url)
    assert response.status_code == 410 and "This link has expired" in response.content.decode()
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_required_login_redirects_to_login_with_next(paused, people, settings):
    settings.LOGIN_URL = "/accounts/login/"
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    before = whole_database()
    for response in (Client().get(url), Client().post(url)):
        assert response.status_code == 302
        assert unquote(response["Location"]) == f"/accounts/login/?next={url}"
    assert whole_database() == before


def test_link_mode_decides_without_login_csrf_still_enforced(paused, people, settings):
    link_mode(settings)
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    browser = Client(enforce_csrf_checks=True)
    assert browser.post(url).status_code == 403  # no CSRF token: refused by CSRF, nothing decided
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"
    page = browser.get(url)
    assert page.status_code == 200 and "ACME" in page.content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = browser.post(url, {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 200
    cp = Checkpoint.objects.get(pk=cp.pk)
    assert cp.status == "approved" and cp.decided_by == people.bob
    assert AuditEvent.objects.get(action="approved").data["via"] == "link"


def test_link_mode_refuses_another_logged_in_user(paused, people, settings):
    link_mode(settings)
    cp = paused()
    response = logged_in(people.carol).post(review.action_url(cp, people.bob, "approve"))
    assert response.status_code == 403 and Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_required_mode_enforces_csrf_on_the_post(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    bob = logged_in(people.bob, enforce_csrf_checks=True)
    assert bob.post(url).status_code == 403
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_a_required_reason_is_asked_for_and_a_rejection_without_it_changes_nothing(paused, people):
    cp = paused(require_reject_reason=True)
    url = review.action_url(cp, people.bob, "reject")
    bob = logged_in(people.bob)
    assert "Reason (required)" in bob.get(url).content.decode()
    before = whole_database()
    response = bob.post(url, {"comment": "  "})
    assert response.status_code == 400 and "the reason is required" in response.content.decode()
    assert whole_database() == before
    assert bob.post(url, {"comment": "Wrong payee"}).status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).comment == "Wrong payee"


def test_an_approval_link_with_a_choice_writes_the_choice(paused, people):
    cp = paused(choices={"publish": "Publish now", "archive": "Archive"})
    url = review.action_url(cp, people.bob, "approve:archive")
    bob = logged_in(people.bob)
    assert "Approve: “Archive”" in bob.get(url).content.decode()
    assert bob.post(url).status_code == 200
    cp = Checkpoint.objects.get(pk=cp.pk)
    assert cp.status == "approved" and cp.run.context["choice"] == "archive"


def test_with_a_quorum_the_page_says_the_approval_is_recorded(paused, people):
    cp = paused(approvals_required=2)
    response = logged_in(people.bob).post(review.action_url(cp, people.bob, "approve"))
    assert response.status_code == 200 and "Your approval is recorded" in response.content.decode()
    carols = review.action_url(Checkpoint.objects.get(pk=cp.pk), people.carol, "approve")
    assert logged_in(people.carol).post(carols).status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"


def test_the_page_extends_the_configured_base_template(paused, people, settings, tmp_path):
    (tmp_path / "mybase.html").write_text("<html><body>MY BASE {% block content %}{% endblock %}</body></html>")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    settings.STEPKIT = {**settings.STEPKIT, "INBOX_BASE_TEMPLATE": "mybase.html"}
    cp = paused()
    html = logged_in(people.bob).get(review.action_url(cp, people.bob, "approve")).content.decode()
    assert html.startswith("<html><body>MY BASE") and "You are about to decide" in html


@pytest.fixture
def french(settings):
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1, LOCALE)
    settings.MIDDLEWARE = middleware
    yield
    translation.deactivate()  # the middleware leaves its language active in this thread


def test_the_pages_are_translated(paused, people, french):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    html = logged_in(people.bob).get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Approuver" in html and "Vous allez décider" in html


def test_a_link_to_an_item_someone_else_is_working_on_offers_no_button(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    Checkpoint.objects.filter(pk=cp.pk).update(claimed_by=people.carol, claimed_at=timezone.now())  # no version bump
    bob = logged_in(people.bob)
    before = whole_database()
    response = bob.get(url)
    assert response.status_code == 410 and "Someone else is working on this item now" in response.content.decode()
    assert "<button" not in response.content.decode()
    assert whole_database() == before


def test_a_link_past_the_items_deadline_offers_no_button(paused, people):
    cp = paused(timeout=timedelta(hours=1))
    url = review.action_url(cp, people.bob, "approve")
    Checkpoint.objects.filter(pk=cp.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = logged_in(people.bob).get(url)
    assert response.status_code == 410 and "The deadline of this item has passed." in response.content.decode()


def test_whoever_reassigned_the_item_gets_no_approval_button(paused, people):
    cp = paused()
    manager = people.grant_reassign("bob")
    review.reassign(cp, manager, to_users=["bob", "carol"])
    url = review.action_url(Checkpoint.objects.get(pk=cp.pk), manager, "approve")
    assert logged_in(manager).get(url).status_code == 403
    reject = review.action_url(Checkpoint.objects.get(pk=cp.pk), manager, "reject")
    assert logged_in(manager).get(reject).status_code == 200  # rejecting stays open to them
