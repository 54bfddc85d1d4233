"""``STEPKIT["AUDIT_VERIFY_SECRETS"]``: old secrets whose chain keys ``stepkit_verify`` accepts, and that
nothing else reads. A trail written under an old ``SECRET_KEY`` verifies with that secret in the setting
alone; new events are never chained with it; Django's signers (sessions, password resets, ``signing``)
and stepkit's action links never accept it; and no output or log line carries it or its key."""

import io
import logging

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import translation

from stepkit_django import ActionLinkInvalid, audit, chain, integrity, links, review
from stepkit_django.checks import check_settings
from stepkit_django.status import AuditAction
from tests.links.test_tokens import token_of
from tests.review.test_review import paused_email

from .test_verify import decided, problems

pytestmark = pytest.mark.django_db

OLD = "the-old-secret-key-" + "o" * 40
NEW = "the-new-secret-key-" + "n" * 40


def rotated(settings, verify=(), fallbacks=()):
    """Settings after the rotation from OLD to NEW, with ``verify`` as AUDIT_VERIFY_SECRETS."""
    return override_settings(
        SECRET_KEY=NEW,
        SECRET_KEY_FALLBACKS=list(fallbacks),
        STEPKIT={**settings.STEPKIT, "AUDIT_VERIFY_SECRETS": list(verify)},
    )


def verify_command():
    """``stepkit_verify``'s output, and whether it failed."""
    out = io.StringIO()
    try:
        call_command("stepkit_verify", stdout=out)
    except CommandError as failed:
        return out.getvalue() + str(failed), True
    return out.getvalue(), False


def material(secret):
    """The secret and its chain key, in every form an output or a log line could show them."""
    key = chain.derive(secret)
    block = key.ljust(64, b"\x00")
    found = [secret, repr(secret.encode())]
    for value in (key, bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)):
        found += [value.hex(), repr(value)]
    return found


def test_a_trail_written_under_an_old_secret_verifies_with_it_in_the_setting_alone(people, settings):
    with override_settings(SECRET_KEY=OLD):
        run = decided(people)
    with rotated(settings, verify=[OLD]):
        report = integrity.verify()
        assert report.ok and report.chained == run.events.count()
        assert report.keys == {"SECRET_KEY": 0, "AUDIT_VERIFY_SECRETS[0]": report.chained}
        out, failed = verify_command()
        assert not failed and "No problem found." in out
        assert f"AUDIT_VERIFY_SECRETS[0]: {report.chained}" in out  # which setting verified, by name
    with rotated(settings):
        assert problems(run) == [(None, "key")]
        out, failed = verify_command()
        assert failed and f"Run {run.pk}:" in out and "AUDIT_VERIFY_SECRETS" in out  # the message says where


def test_a_trail_across_the_rotation_verifies_with_each_key_counted(people, settings):
    with override_settings(SECRET_KEY=OLD):
        run = decided(people)
    old = run.events.count()
    with rotated(settings, verify=["unrelated-secret", OLD]):
        audit.record(run, AuditAction.EDITED, checkpoint=run.checkpoints.get(), data={"after": "rotation"})
        report = integrity.verify(run)
        assert report.ok
        assert report.keys == {"SECRET_KEY": 1, "AUDIT_VERIFY_SECRETS[0]": 0, "AUDIT_VERIFY_SECRETS[1]": old}
        assert report.keys_summary() == (
            f"Events verified with each key: SECRET_KEY: 1, AUDIT_VERIFY_SECRETS[0]: 0, AUDIT_VERIFY_SECRETS[1]: {old}."
        )
    with rotated(settings):  # the old secret dropped: its events no longer verify, the new one does
        assert [kind for _, kind in problems(run)] == ["changed"] * old


def test_new_events_are_never_chained_with_a_verify_secret(people, settings):
    with rotated(settings, verify=[OLD]):
        assert chain.signing_key() == chain.derive(NEW)
        run = decided(people)
        assert integrity.verify(run).keys == {"SECRET_KEY": run.events.count(), "AUDIT_VERIFY_SECRETS[0]": 0}
    with rotated(settings):  # SECRET_KEY alone verifies them: none was chained with the old secret
        assert problems(run) == []
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):  # and the old secret verifies none
        assert problems(run) == [(None, "key")]


def test_a_verify_secret_is_never_a_fallback_for_djangos_signers_or_the_action_links(people, settings):
    _, cp = paused_email(people)
    user = people.alice
    with override_settings(SECRET_KEY=OLD):
        signed = signing.dumps({"session": 1})
        reset = default_token_generator.make_token(user)
        link = token_of(review.action_url(cp, people.bob, "approve"))
    with rotated(settings, fallbacks=[OLD]):  # as a fallback, Django and stepkit accept the old secret
        assert signing.loads(signed) == {"session": 1}
        assert default_token_generator.check_token(user, reset)
        assert links.read(link).checkpoint_id == str(cp.pk)
    with rotated(settings, verify=[OLD]):  # as a verify secret, nothing but the chain does
        assert django_settings.SECRET_KEY_FALLBACKS == []
        with pytest.raises(signing.BadSignature):
            signing.loads(signed)
        assert not default_token_generator.check_token(user, reset)
        with pytest.raises(ActionLinkInvalid):
            links.read(link)


def test_no_output_or_log_line_carries_a_verify_secret_or_its_key(people, settings, caplog):
    settings.DEBUG = True
    with override_settings(SECRET_KEY=OLD):
        run = decided(people)
    with rotated(settings, verify=[OLD]), caplog.at_level(logging.DEBUG):
        out, failed = verify_command()
        with translation.override("fr"):
            out += str(integrity.verify().keys_summary())
    with rotated(settings):
        failure, _ = verify_command()
    assert not failed and run.events.count()
    texts = [out, failure] + [repr(r.args) + r.getMessage() for r in caplog.records]
    for secret in material(OLD):
        assert not any(secret in text for text in texts)


@pytest.mark.parametrize(
    "value",
    [OLD, OLD.encode(), None, {"key": OLD}, [OLD, ""], [b""], [OLD, 42], [[OLD]], 0],
    ids=["a string", "bytes", "None", "a dict", "an empty secret", "empty bytes", "a number", "a nested list", "0"],
)
def test_the_system_check_refuses_anything_but_a_list_of_non_empty_secrets(value, settings):
    settings.STEPKIT = {**settings.STEPKIT, "AUDIT_VERIFY_SECRETS": value}
    errors = check_settings()
    assert [e.id for e in errors] == ["stepkit_django.E011"]
    assert not any(OLD in f"{e.msg} {e.hint}" for e in errors)  # the value holds secrets: never shown
    with pytest.raises(ImproperlyConfigured, match="AUDIT_VERIFY_SECRETS"):
        integrity.verify()  # never read as one secret per character
    assert chain.signing_key() == chain.derive(settings.SECRET_KEY)  # new events are still chained


@pytest.mark.parametrize("value", [[], (), [OLD], (OLD.encode(), NEW)])
def test_the_system_check_accepts_lists_and_tuples_of_secrets(value, settings):
    settings.STEPKIT = {**settings.STEPKIT, "AUDIT_VERIFY_SECRETS": value}
    assert check_settings() == []


def test_the_check_message_is_translated(settings):
    settings.STEPKIT = {**settings.STEPKIT, "AUDIT_VERIFY_SECRETS": OLD}
    with translation.override("fr"):
        (error,) = check_settings()
    assert "AUDIT_VERIFY_SECRETS" in error.msg and "doit" in error.msg


def test_the_keys_are_named_by_their_setting_and_listed_once(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW, ["fallback", OLD]
    settings.STEPKIT = {**settings.STEPKIT, "AUDIT_VERIFY_SECRETS": [OLD.encode(), NEW, "verify-only"]}
    assert chain.named_verifying_keys() == [
        ("SECRET_KEY", chain.derive(NEW)),
        ("SECRET_KEY_FALLBACKS[0]", chain.derive("fallback")),
        ("SECRET_KEY_FALLBACKS[1]", chain.derive(OLD)),  # its bytes in AUDIT_VERIFY_SECRETS: the same key
        ("AUDIT_VERIFY_SECRETS[2]", chain.derive("verify-only")),
    ]
    assert chain.verifying_keys() == [key for _, key in chain.named_verifying_keys()]


def test_the_default_adds_no_key(settings):
    settings.SECRET_KEY_FALLBACKS = []
    assert "AUDIT_VERIFY_SECRETS" not in settings.STEPKIT
    assert chain.named_verifying_keys() == [("SECRET_KEY", chain.signing_key())]
