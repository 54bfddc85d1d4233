"""Signed action links' tokens: bound to the checkpoint, its version, the user and the outcome; refused when
changed, expired, stale, or used by someone else; valid across a key rotation."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import signing
from django.test import override_settings
from django.utils import timezone

from stepkit_django import ActionLinkInvalid, InvalidDecision, ReviewConflict, links, review

pytestmark = pytest.mark.django_db


def refusal(call):
    """The reason of the ActionLinkInvalid that ``call()`` raises."""
    with pytest.raises(ActionLinkInvalid) as refused:
        call()
    return refused.value.reason


def token_of(url):
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_the_url_is_under_the_inbox_and_binds_checkpoint_version_user_and_outcome(paused, people):
    cp = paused()
    url = review.action_url(cp, people.bob, "approve")
    assert url.startswith("/review/link/") and url.endswith("/")
    link = links.read(token_of(url))
    assert (link.checkpoint_id, link.version, link.user_id, link.outcome, link.choice) == (
        str(cp.pk),
        cp.version,
        str(people.bob.pk),
        "approve",
        "",
    )
    assert (
        timedelta(days=3) - timedelta(seconds=5) < link.expires_at - timezone.now() <= timedelta(days=3, seconds=1)
    )  # rounded up to a whole second


def test_the_url_is_absolute_with_base_url(paused, people, settings):
    cp = paused()
    settings.STEPKIT = {**settings.STEPKIT, "BASE_URL": "https://review.example.com/"}
    assert review.action_url(cp, people.bob, "reject").startswith("https://review.example.com/review/link/")


def test_the_signature_has_a_salt_of_its_own(paused, people):
    cp = paused()
    token = token_of(review.action_url(cp, people.bob, "approve"))
    with pytest.raises(signing.BadSignature):
        signing.loads(token)  # the default salt: another use of SECRET_KEY cannot be taken for a link
    forged = signing.dumps(signing.loads(token, salt=links.SALT))  # the same payload, signed without the salt
    with pytest.raises(ActionLinkInvalid) as refused:
        links.read(forged)
    assert refused.value.reason == "tampered"


def test_a_changed_character_anywhere_is_refused(paused, people):
    cp = paused()
    token = token_of(review.action_url(cp, people.bob, "approve"))
    for index in range(0, len(token), 7):
        changed = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
        with pytest.raises(ActionLinkInvalid) as refused:
            links.read(changed)
        assert refused.value.reason == "tampered"


@pytest.mark.parametrize("token", ["", "x", ":", "::", "a:b:c", "%00", "é" * 50, "A" * 5000, "e30:1a:bad"])
def test_malformed_tokens_are_tampered(token):
    with pytest.raises(ActionLinkInvalid) as refused:
        links.read(token)
    assert refused.value.reason == "tampered"


def test_a_link_expires_after_max_age(paused, people, monkeypatch):
    cp = paused()
    token = token_of(review.action_url(cp, people.bob, "approve", max_age=60))
    assert links.read(token).outcome == "approve"
    later = timezone.now() + timedelta(seconds=61)
    monkeypatch.setattr(
        links, "timezone", SimpleNamespace(now=lambda: later, get_current_timezone=timezone.get_current_timezone)
    )
    with pytest.raises(ActionLinkInvalid) as refused:
        links.read(token)
    assert refused.value.reason == "expired"


def test_the_default_age_is_the_setting(paused, people, settings, monkeypatch):
    cp = paused()
    settings.STEPKIT = {**settings.STEPKIT, "ACTION_LINK_MAX_AGE": 3600}
    token = token_of(review.action_url(cp, people.bob, "approve"))
    soon = timezone.now() + timedelta(seconds=3590)
    late = timezone.now() + timedelta(seconds=3610)
    clock = SimpleNamespace(now=lambda: soon, get_current_timezone=timezone.get_current_timezone)
    monkeypatch.setattr(links, "timezone", clock)
    links.read(token)
    clock.now = lambda: late
    assert refusal(lambda: links.read(token)) == "expired"


def test_a_link_made_under_an_old_key_works_after_rotation(paused, people):
    cp = paused()
    with override_settings(SECRET_KEY="the-old-key-" + "x" * 40):
        token = token_of(review.action_url(cp, people.bob, "approve"))
    with override_settings(SECRET_KEY="the-new-key-" + "y" * 40, SECRET_KEY_FALLBACKS=["the-old-key-" + "x" * 40]):
        assert links.read(token).checkpoint_id == str(cp.pk)
    with override_settings(SECRET_KEY="the-new-key-" + "y" * 40, SECRET_KEY_FALLBACKS=[]):
        assert refusal(lambda: links.read(token)) == "tampered"  # the old key retired: its links no longer work


def test_a_link_is_stale_once_the_checkpoint_changes(paused, people):
    cp = paused()
    link = links.read(token_of(review.action_url(cp, people.bob, "approve")))
    review.edit(cp, people.carol, {"amount": 121})
    with pytest.raises(ActionLinkInvalid) as refused:
        links.resolve(link, people.bob)
    assert refused.value.reason == "stale"


def test_a_link_decided_by_its_user_is_used_and_by_another_stale(paused, people):
    cp = paused()
    bobs = links.read(token_of(review.action_url(cp, people.bob, "approve")))
    carols = links.read(token_of(review.action_url(cp, people.carol, "reject")))
    review.approve(cp, people.bob, expected_version=bobs.version)
    assert refusal(lambda: links.resolve(bobs, people.bob)) == "used"
    assert refusal(lambda: links.resolve(carols, people.carol)) == "stale"


def test_another_user_is_refused_before_the_checkpoint_is_looked_up(paused, people, django_assert_num_queries):
    cp = paused()
    link = links.read(token_of(review.action_url(cp, people.bob, "approve")))
    with django_assert_num_queries(0), pytest.raises(ActionLinkInvalid) as refused:
        links.resolve(link, people.dave)
    assert refused.value.reason == "foreign_user"


def test_a_user_who_may_no_longer_review_is_not_allowed(paused, people):
    cp = paused()
    link = links.read(token_of(review.action_url(cp, people.bob, "approve")))
    people.bob.user_permissions.clear()
    from django.contrib.auth.models import User

    assert refusal(lambda: links.resolve(link, User.objects.get(pk=people.bob.pk))) == "not_allowed"
    User.objects.filter(pk=people.bob.pk).update(is_active=False)
    assert refusal(lambda: links.resolve(link)) == "not_allowed"  # the "link" login mode: the link's user, read afresh


def test_outcomes_the_review_does_not_allow_are_refused(paused, people):
    cp = paused()
    for outcome in ("publish", "approve:publish", "reject:x", "request_changes", ""):
        with pytest.raises(InvalidDecision):
            review.action_url(cp, people.bob, outcome)


def test_a_review_with_choices_needs_the_choice_in_the_outcome(paused, people):
    cp = paused(choices={"publish": "Publish now", "archive": "Archive"})
    with pytest.raises(InvalidDecision, match="approve:publish"):
        review.action_url(cp, people.bob, "approve")
    link = links.read(token_of(review.action_url(cp, people.bob, "approve:archive")))
    assert (link.outcome, link.choice, link.outcome_key) == ("approve", "archive", "approve:archive")


def test_no_link_is_made_for_a_decided_checkpoint(paused, people):
    cp = paused()
    review.reject(cp, people.bob)
    with pytest.raises(ReviewConflict):
        review.action_url(cp, people.carol, "approve")


def test_the_reason_must_be_a_known_one():
    with pytest.raises(ValueError):
        ActionLinkInvalid("weird")


@pytest.mark.parametrize(
    "extra",
    [
        {"ACTION_LINK_MAX_AGE": 0},
        {"ACTION_LINK_MAX_AGE": "3d"},
        {"ACTION_LINK_MAX_AGE": float("inf")},
        {"ACTION_LINK_MAX_AGE": float("nan")},
        {"ACTION_LINK_MAX_AGE": 10**12},
        {"ACTION_LINK_MAX_AGE": 0.4},
        {"ACTION_LINKS_LOGIN": "none"},
    ],
)
def test_the_system_checks_name_a_misconfigured_link_setting(extra, settings):
    from stepkit_django.checks import check_settings

    settings.STEPKIT = {**settings.STEPKIT, **extra}
    assert [e.id for e in check_settings()] == ["stepkit_django.E009"]


def test_the_system_checks_accept_the_link_settings(settings):
    from stepkit_django.checks import check_settings

    settings.STEPKIT = {**settings.STEPKIT, "ACTION_LINK_MAX_AGE": timedelta(hours=4), "ACTION_LINKS_LOGIN": "link"}
    assert check_settings() == []


def test_an_unknown_login_mode_is_treated_as_required(paused, people, settings, client):
    settings.STEPKIT = {**settings.STEPKIT, "ACTION_LINKS_LOGIN": "nobody"}
    cp = paused()
    assert client.get(review.action_url(cp, people.bob, "approve")).status_code == 302


@pytest.mark.parametrize("age", [float("inf"), float("nan"), 10**12, 0.4, -1])
def test_a_lifetime_that_no_link_could_have_is_refused_when_making_it(paused, people, age):
    cp = paused()
    with pytest.raises(ValueError, match="between 1 second and 365 days"):
        review.action_url(cp, people.bob, "approve", max_age=age)


def test_a_one_second_link_works_when_it_is_made(paused, people):
    cp = paused()
    token = review.action_url(cp, people.bob, "approve", max_age=1).rstrip("/").split("/")[-1]
    assert links.read(token).outcome == "approve"  # the expiry is rounded up, not down to now


def test_a_signed_rejection_with_a_choice_is_not_a_link_this_site_makes(settings):
    token = signing.dumps(
        {"c": "8d5c8b33-5a4e-4d55-9c7e-2f2f8f3a4b11", "v": 1, "u": "1", "o": "reject:publish", "x": 2**31},
        salt=links.SALT,
    )
    with pytest.raises(ActionLinkInvalid) as refused:
        links.read(token)
    assert refused.value.reason == "tampered"
