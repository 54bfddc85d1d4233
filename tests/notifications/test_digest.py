"""The daily digest: one email per reviewer listing what waits for them, oldest first, overdue items marked."""

import email
from datetime import timedelta
from email.policy import default as default_policy

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stepkit_django import review, start
from stepkit_django.models import Checkpoint, Notification
from stepkit_django.notifications.delivery import deliver
from stepkit_django.notifications.digest import send_digests, waiting_for_reviewers
from stepkit_django.status import NotificationEvent, NotificationStatus

from .conftest import EMAIL, smtp_settings, stepkit_settings, to

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("email_notifications")]

LINK = "https://review.example.com/review/{}/"


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs the on-commit callbacks (the sends) of what happens in the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def item(pipeline, user, title, *, waited, due_in=None):
    """Start a run of ``pipeline`` by ``user``; its checkpoint, titled ``title``, waiting for ``waited``."""
    cp = start(pipeline, {}, user=user).checkpoints.get()
    now = timezone.now()
    expires = now + due_in if due_in is not None else None
    Checkpoint.objects.filter(pk=cp.pk).update(title=title, created_at=now - waited, expires_at=expires)
    return Checkpoint.objects.get(pk=cp.pk)


def test_each_reviewer_gets_one_email_oldest_first_with_overdue_items_marked(
    cast, invoice_pipeline, committed, mailoutbox
):
    invoice_pipeline()
    newest = item("invoice", cast.alice, "Newest invoice", waited=timedelta(hours=1), due_in=timedelta(days=1))
    oldest = item("invoice", cast.alice, "Oldest invoice", waited=timedelta(days=3), due_in=-timedelta(days=1))
    with committed():
        assert send_digests() == 2
    # bob and carol: editors who hold the permission; not eve (no permission), dave (another group),
    # alice (the starter, without the permission), the superuser (not assigned) nor mgr
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]
    mail = next(m for m in mailoutbox if m.to == ["bob@example.com"])
    assert mail.subject == "2 items wait for your review (1 overdue)"
    body = mail.body
    assert body.index("Oldest invoice") < body.index("Newest invoice")
    assert "1. [OVERDUE] Oldest invoice" in body and "2. Newest invoice" in body
    assert "Overdue since:" in body and "Due:" in body
    assert "Pipeline: invoice / Step: draft" in body and "Payee: ACME & Co" in body
    assert "Waiting for 3\xa0days" in body and "Waiting for 1\xa0hour" in body
    assert LINK.format(oldest.pk) in body and LINK.format(newest.pk) in body
    assert "Open your queue: https://review.example.com/review/" in body
    html, mimetype = mail.alternatives[0]
    assert mimetype == "text/html"
    assert html.index("Oldest invoice") < html.index("Newest invoice")
    assert html.count("Overdue:</strong>") == 1  # in words, not colour alone
    assert f'href="{LINK.format(oldest.pk)}"' in html and "ACME &amp; Co" in html
    digest = Notification.objects.get(event=NotificationEvent.DIGEST, recipient=cast.bob)
    assert digest.status == NotificationStatus.SENT and digest.run is None
    assert digest.data["items"] == [str(oldest.pk), str(newest.pk)]


def test_no_digest_for_users_without_the_permission_without_items_or_without_an_address(
    cast, invoice_pipeline, committed, mailoutbox
):
    invoice_pipeline()
    with committed():
        assert send_digests() == 0  # nothing waits: nobody is emailed
    assert mailoutbox == []
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    User.objects.filter(pk=cast.carol.pk).update(email="")
    User.objects.filter(pk=cast.eve.pk).update(is_active=True)
    with committed():
        assert send_digests() == 1
    assert to(mailoutbox) == ["bob@example.com"]  # carol has no address; eve no permission


def test_no_other_groups_items_leak_into_a_digest(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    invoice_pipeline("payroll", assign_to_group="managers")
    item("invoice", cast.alice, "Editors' invoice", waited=timedelta(hours=2))
    item("payroll", cast.alice, "Managers' payroll", waited=timedelta(hours=3))
    with committed():
        assert send_digests() == 3
    by_address = {m.to[0]: m.body for m in mailoutbox}
    assert sorted(by_address) == ["bob@example.com", "carol@example.com", "dave@example.com"]
    assert "Editors' invoice" in by_address["bob@example.com"]
    assert "Managers' payroll" not in by_address["bob@example.com"]
    assert "Managers' payroll" in by_address["dave@example.com"]
    assert "Editors' invoice" not in by_address["dave@example.com"]


def test_a_starters_own_runs_are_left_out_under_four_eyes(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(assign_to_group=None)  # assigned to nobody: every holder of the permission reviews it
    item("invoice", cast.bob, "Bob's own invoice", waited=timedelta(hours=2))
    with committed():
        assert send_digests() == 2
    assert to(mailoutbox) == ["carol@example.com", "dave@example.com"]  # not bob, not the superuser


def test_a_review_that_allows_self_approval_lists_the_starters_own_run(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(assign_to_group=None, allow_self_approval=True)
    item("invoice", cast.bob, "Bob's own invoice", waited=timedelta(hours=2))
    with committed():
        send_digests()
    assert "bob@example.com" in to(mailoutbox)


def test_the_digest_lists_what_the_queue_shows_the_reviewer_and_may_decide(cast, invoice_pipeline):
    invoice_pipeline(assign_to_group=None, approvals_required=2)
    invoice_pipeline("payroll", assign_to_group="managers")
    approved = item("invoice", cast.alice, "Approved by bob once", waited=timedelta(hours=4))
    review.approve(approved, cast.bob)
    item("invoice", cast.bob, "Bob's own", waited=timedelta(hours=3))
    item("payroll", cast.alice, "Payroll", waited=timedelta(hours=2))
    waiting = {entry.user.username: [cp.title for cp in entry.checkpoints] for entry in waiting_for_reviewers()}
    # bob: approved the first already (it waits for a second approver), started the second, not a manager
    assert waiting == {
        "carol": ["Approved by bob once", "Bob's own"],
        "dave": ["Approved by bob once", "Bob's own", "Payroll"],
    }
    for entry in waiting_for_reviewers():
        queue = set(Checkpoint.objects.pending().for_user(entry.user).values_list("pk", flat=True))
        assert {cp.pk for cp in entry.checkpoints} <= queue


def test_twice_on_one_day_sends_once_and_the_next_day_again(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    now = timezone.now()
    with committed():
        assert send_digests(now) == 2
    with committed():
        assert send_digests(now) == 0  # the same day: nothing new
    assert len(mailoutbox) == 2
    for pk in Notification.objects.filter(event=NotificationEvent.DIGEST).values_list("pk", flat=True):
        assert deliver(pk) is False  # a re-delivered task sends nothing twice
    assert len(mailoutbox) == 2
    with committed():
        assert send_digests(now + timedelta(days=1)) == 2
    assert len(mailoutbox) == 4


def test_a_rolled_back_transaction_writes_and_sends_nothing(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    with committed() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        assert send_digests() == 2
        raise RuntimeError("the caller's transaction fails")
    assert callbacks == [] and mailoutbox == []
    assert not Notification.objects.filter(event=NotificationEvent.DIGEST).exists()


def test_an_item_decided_before_the_digest_is_sent_is_left_out(cast, invoice_pipeline, mailoutbox):
    invoice_pipeline()
    first = item("invoice", cast.alice, "Decided meanwhile", waited=timedelta(hours=3))
    item("invoice", cast.alice, "Still waiting", waited=timedelta(hours=2))
    assert send_digests() == 2  # the sends wait for a commit that never comes in this test
    review.approve(first, cast.carol)
    digest = Notification.objects.get(event=NotificationEvent.DIGEST, recipient=cast.bob)
    assert deliver(digest.pk) is True
    [mail] = [m for m in mailoutbox if m.to == ["bob@example.com"]]
    assert mail.subject == "1 item waits for your review"
    assert "Still waiting" in mail.body and "Decided meanwhile" not in mail.body


def test_a_digest_whose_items_were_all_decided_is_not_emailed(cast, invoice_pipeline, mailoutbox):
    invoice_pipeline()
    cp = item("invoice", cast.alice, "Decided meanwhile", waited=timedelta(hours=3))
    send_digests()
    review.approve(cp, cast.carol)
    digest = Notification.objects.get(event=NotificationEvent.DIGEST, recipient=cast.bob)
    assert deliver(digest.pk) is True
    assert [m for m in mailoutbox if m.to == ["bob@example.com"]] == []


def test_a_long_queue_lists_the_oldest_and_says_how_many_more(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    for hours in range(4):
        item("invoice", cast.alice, f"Waiting {hours + 1}h", waited=timedelta(hours=hours + 1))
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=EMAIL, DIGEST_MAX_ITEMS=2)), committed():
        send_digests()
    mail = next(m for m in mailoutbox if m.to == ["bob@example.com"])
    assert mail.subject == "4 items wait for your review"
    assert "Waiting 4h" in mail.body and "Waiting 3h" in mail.body and "Waiting 1h" not in mail.body
    assert "And 2 more items wait for you." in mail.body


def test_nothing_is_sent_without_an_email_notifier(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    webhook = {"hook": {"BACKEND": "stepkit_django.notifications.WebhookNotifier", "OPTIONS": {"url": "http://h/"}}}
    no_digest = {"email": {**EMAIL["email"], "OPTIONS": {"events": ["review_requested"]}}}
    for notifiers in ({}, webhook, no_digest):
        with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers)), committed():
            assert send_digests() == 0
    assert mailoutbox == [] and not Notification.objects.filter(event=NotificationEvent.DIGEST).exists()


def test_each_email_notifier_sends_its_own_digest_in_its_language(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    item("invoice", cast.alice, "Une facture", waited=timedelta(hours=2), due_in=-timedelta(hours=1))
    notifiers = {**EMAIL, "courriel": {**EMAIL["email"], "OPTIONS": {"language": "fr"}}}
    with override_settings(STEPKIT=stepkit_settings(NOTIFIERS=notifiers)), committed():
        assert send_digests() == 4  # bob and carol, by each notifier
    subjects = sorted({m.subject for m in mailoutbox})
    assert subjects == ["1 item waits for your review (1 overdue)", "1 élément attend votre relecture (1 en retard)"]
    french = next(m for m in mailoutbox if m.subject.startswith("1 élément"))
    assert "[EN RETARD] Une facture" in french.body


def test_the_query_count_does_not_grow_with_reviewers_or_items(cast, invoice_pipeline, committed, people):
    invoice_pipeline()
    invoice_pipeline("payroll", assign_to_group=None)

    def count():
        with CaptureQueriesContext(connection) as queries:
            waiting_for_reviewers()
        return len(queries)

    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    item("payroll", cast.alice, "A payroll", waited=timedelta(hours=2))
    few = count()
    for n in range(8):
        user = User.objects.create_user(f"editor{n}", email=f"editor{n}@example.com")
        user.groups.add(people.editors)
        user.user_permissions.add(people.review_permission)
        item("invoice" if n % 2 else "payroll", cast.alice, f"Item {n}", waited=timedelta(hours=n))
    many = count()
    assert len(waiting_for_reviewers()) == 11 and many == few
    with CaptureQueriesContext(connection) as queries:
        assert send_digests() == 11
    assert len(queries) <= few + 8  # writing them: a small constant number more


def test_the_command_writes_the_digests(cast, invoice_pipeline, committed, mailoutbox, capsys):
    invoice_pipeline()
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    with committed():
        call_command("stepkit_digest")
    assert capsys.readouterr().out.strip() == "2 digest(s) written."
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]


def test_a_digest_reaches_a_real_smtp_server(smtp_server, cast, invoice_pipeline):
    controller, inbox = smtp_server
    invoice_pipeline(assign_to_group=None, assign_to_user="bob")
    cp = item("invoice", cast.alice, "Pay ACME", waited=timedelta(days=2), due_in=-timedelta(hours=1))
    smtp = smtp_settings(controller.port)
    with override_settings(**smtp):
        assert send_digests() == 1
        digest = Notification.objects.get(event=NotificationEvent.DIGEST)
        assert deliver(digest.pk) is True
    [(sender, recipients, content)] = inbox.messages
    assert (sender, recipients) == ("stepkit@example.com", ["bob@example.com"])
    message = email.message_from_bytes(content, policy=default_policy)
    assert message["Subject"] == "1 item waits for your review (1 overdue)"
    text = message.get_body(("plain",)).get_content()
    assert "[OVERDUE] Pay ACME" in text and LINK.format(cp.pk) in text
    assert "Overdue:</strong>" in message.get_body(("html",)).get_content()


def test_the_task_and_the_celery_task_call_the_same_entry_function(cast, invoice_pipeline, committed, mailoutbox):
    from stepkit_django import tasks
    from stepkit_django.contrib import celery

    invoice_pipeline()
    item("invoice", cast.alice, "An invoice", waited=timedelta(hours=2))
    with committed():
        assert tasks.send_digests.call() == 2
    with committed():
        assert celery.send_digests.apply().get() == 0  # the same day: sent already
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]


@pytest.mark.parametrize("most", [0, "50", True])
def test_the_system_checks_name_a_digest_size_out_of_range(most):
    from stepkit_django.checks import check_settings

    with override_settings(STEPKIT=stepkit_settings(DIGEST_MAX_ITEMS=most)):
        assert [e.id for e in check_settings()] == ["stepkit_django.E008"]


def test_backends_that_cannot_list_holders_give_the_same_digests(cast, invoice_pipeline, people):
    invoice_pipeline(assign_to_group=None)
    invoice_pipeline("payroll", assign_to_group="managers")
    item("invoice", cast.bob, "Bob's own", waited=timedelta(hours=3))
    item("payroll", cast.alice, "Payroll", waited=timedelta(hours=2))

    def digest():
        return {e.user.username: [cp.title for cp in e.checkpoints] for e in waiting_for_reviewers()}

    listed = digest()
    assert listed == {"carol": ["Bob's own"], "dave": ["Bob's own", "Payroll"]}
    backend = "django.contrib.auth.backends.ModelBackend"
    with override_settings(AUTHENTICATION_BACKENDS=[backend, "django.contrib.auth.backends.RemoteUserBackend"]):
        assert digest() == listed  # with_perm() needs one backend: has_perm() per user instead
