"""``Review(email_actions=True)``: each reviewer's review-requested email carries approve and reject links made
for them; other emails, webhooks and reviews without the option carry none."""

import json

import pytest
from django.test import override_settings

from stepkit_django import Review, links, review
from stepkit_django.models import Checkpoint, Notification
from stepkit_django.notifications.messages import build
from tests.notifications.conftest import EMAIL, stepkit_settings

from .conftest import links_in, logged_in, whole_database

pytestmark = pytest.mark.django_db


@pytest.fixture
def emails(django_capture_on_commit_callbacks, mailoutbox):
    """Emails of every review (locmem), absolute links; ``emails(make)`` runs ``make()`` and sends what it wrote."""

    def send(make):
        notify = override_settings(STEPKIT=stepkit_settings(NOTIFIERS=EMAIL, BASE_URL="https://review.example.com"))
        with notify, django_capture_on_commit_callbacks(execute=True):
            return make()

    return send


def by_recipient(outbox):
    return {message.to[0]: message for message in outbox}


def test_each_reviewer_gets_approve_and_reject_links_of_their_own(cast, paused, emails, mailoutbox):
    cp = emails(lambda: paused(email_actions=True))
    sent = by_recipient(mailoutbox)
    assert sorted(sent) == ["bob@example.com", "carol@example.com"]
    for name in ("bob", "carol"):
        message = sent[f"{name}@example.com"]
        text, html = message.body, message.alternatives[0].content
        assert "https://review.example.com/review/link/" in text
        found = links_in(text)
        assert len(found) == 2 and links_in(html) == found
        approve, reject = (links.read(path.rstrip("/").rsplit("/", 1)[-1]) for path in found)
        assert (approve.outcome, reject.outcome) == ("approve", "reject")
        assert approve.user_id == reject.user_id == str(getattr(cast, name).pk)
        assert approve.checkpoint_id == str(cp.pk) and approve.version == cp.version
        assert "Approve: https://review.example.com/review/link/" in text


def test_a_link_from_the_email_confirms_then_decides(cast, paused, emails, mailoutbox):
    cp = emails(lambda: paused(email_actions=True))
    approve, _reject = links_in(by_recipient(mailoutbox)["carol@example.com"].body)
    carol = logged_in(cast.carol)
    before = whole_database()
    assert carol.get(approve).status_code == 200
    assert whole_database() == before
    assert carol.post(approve).status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"


def test_without_the_option_the_email_has_no_action_links(cast, paused, emails, mailoutbox):
    emails(lambda: paused())
    assert mailoutbox and all(not links_in(message.body) for message in mailoutbox)


def test_a_review_with_choices_gets_one_approve_link_per_choice(cast, paused, emails, mailoutbox):
    emails(lambda: paused(email_actions=True, choices={"publish": "Publish now", "archive": "Archive"}))
    text = by_recipient(mailoutbox)["bob@example.com"].body
    outcomes = [links.read(path.rstrip("/").rsplit("/", 1)[-1]).outcome_key for path in links_in(text)]
    assert outcomes == ["approve:publish", "approve:archive", "reject"]
    assert "Approve: Publish now:" in text


def test_a_webhook_never_carries_action_links(cast, paused, emails, mailoutbox):
    cp = emails(lambda: paused(email_actions=True))
    notification = Notification.objects.filter(checkpoint=cp).first()
    body = json.dumps(build(notification).as_dict())
    assert "/review/link/" not in body


def test_an_email_sent_after_the_decision_offers_no_links(
    cast, paused, people, mailoutbox, django_capture_on_commit_callbacks
):
    cp = paused(email_actions=True)  # notifications written; not sent (inside the test's transaction)
    review.approve(cp, people.bob)
    from stepkit_django.notifications.notifiers import EmailNotifier

    notification = Notification(event="review_requested", checkpoint=cp, run=cp.run, recipient=people.carol)
    _subject, text, _html = EmailNotifier().render(notification, build(notification))
    assert not links_in(text)


def test_the_option_must_be_a_boolean_and_is_stored_with_the_checkpoint(paused):
    with pytest.raises(TypeError):
        Review(email_actions="yes")
    assert Review(email_actions=True).snapshot()["email_actions"] is True
    assert Review().snapshot()["email_actions"] is False
