"""Each event tells the people its rule names, by email (Django's locmem backend), and never its actor."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Notification
from stepkit_django.notifications import EmailNotifier
from stepkit_django.notifications.delivery import deliver
from stepkit_django.notifications.events import notify
from stepkit_django.status import NotificationEvent, NotificationStatus

from .conftest import to

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("email_notifications")]


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs the on-commit callbacks (the sends) of what happens in the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_review_requested_tells_the_assigned_reviewers_who_may_review(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    with committed():
        run = start("invoice", {}, user=cast.alice)
    # bob and carol: editors who hold the permission; not eve (an editor without it), not dave (another group)
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]
    email = mailoutbox[0]
    cp = run.checkpoints.get()
    assert email.subject == "Review requested: Pay ACME & Co 120 EUR"  # plain text: nothing escaped
    assert f"https://review.example.com/review/{cp.pk}/" in email.body
    assert "Payee: ACME & Co" in email.body and "Due:" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html" and "ACME &amp; Co" in html and 'href="https://review.example.com/review/' in html
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}


def test_a_review_assigned_to_nobody_tells_the_holders_of_its_permission(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(assign_to_group=None)
    with committed():
        start("invoice", {}, user=cast.alice)
    # granted the permission: bob, carol, dave; not the superuser, not the starter, not eve
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com", "dave@example.com"]


def test_the_starter_is_not_asked_to_review_their_own_run(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(assign_to_group=None, assign_to_user=["bob", "alice"])
    cast.alice.user_permissions.add(cast.review_permission)
    with committed():
        start("invoice", {}, user=cast.alice)
    assert to(mailoutbox) == ["bob@example.com"]  # four-eyes: alice may not review it


def test_approval_tells_the_starter_and_not_the_approver(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    run = start("invoice", {}, user=cast.alice)
    with committed():
        review.approve(run.checkpoints.get(), cast.bob, comment="Fine by me")
    assert to(mailoutbox) == ["alice@example.com"]
    assert mailoutbox[0].subject == "Approved: Pay ACME & Co 120 EUR"
    assert "Fine by me" in mailoutbox[0].body


def test_an_approval_short_of_the_quorum_tells_nobody(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(approvals_required=2)
    run = start("invoice", {}, user=cast.alice)
    with committed():
        review.approve(run.checkpoints.get(), cast.bob)
    assert mailoutbox == []
    with committed():
        review.approve(run.checkpoints.get(), cast.carol)
    assert to(mailoutbox) == ["alice@example.com"]


def test_a_per_group_quorum_tells_the_starter_once_every_group_approved(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(assign_to_group=None, approvals_required={"editors": 1, "managers": 1})
    run = start("invoice", {}, user=cast.alice)
    with committed():
        review.approve(run.checkpoints.get(), cast.bob)
    assert not [m for m in mailoutbox if m.subject.startswith("Approved")]
    with committed():
        review.approve(run.checkpoints.get(), cast.dave)
    assert [m.to for m in mailoutbox if m.subject.startswith("Approved")] == [["alice@example.com"]]


def test_rejection_and_request_for_changes_tell_the_starter(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    first = start("invoice", {}, user=cast.alice)
    second = start("invoice", {}, user=cast.alice)
    with committed():
        review.reject(first.checkpoints.get(), cast.bob, comment="Wrong payee")
        review.request_changes(second.checkpoints.get(), cast.carol, "Add the VAT")
    subjects = {(m.to[0], m.subject.split(":")[0]) for m in mailoutbox}
    assert ("alice@example.com", "Rejected") in subjects and ("alice@example.com", "Changes requested") in subjects
    assert "Wrong payee" in next(m.body for m in mailoutbox if m.subject.startswith("Rejected"))
    # the new revision asks its reviewers again (carol requested it, bob may review it)
    assert sorted(m.to[0] for m in mailoutbox if m.subject.startswith("Review requested")) == [
        "bob@example.com",
        "carol@example.com",
    ]


def test_reassignment_tells_the_new_reviewers_and_never_the_actor(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    run = start("invoice", {}, user=cast.alice)
    with committed():
        review.reassign(run.checkpoints.get(), cast.root, to_users=["dave", "root"])
    assert to(mailoutbox) == ["dave@example.com"]  # root did it: not told
    assert mailoutbox[0].subject == "Assigned to you: Pay ACME & Co 120 EUR"


def test_a_revision_that_keeps_the_chosen_reviewers_asks_them_once(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    run = start("invoice", {}, user=cast.alice)
    review.reassign(run.checkpoints.get(), cast.root, to_users=["dave", "bob"])
    with committed():
        review.request_changes(run.checkpoints.get(), cast.dave, "Add the VAT")
    asked = sorted(m.to[0] for m in mailoutbox if m.subject.startswith("Review requested"))
    assert asked == ["bob@example.com", "dave@example.com"]  # the reviewers root chose keep the revision
    assert not [m for m in mailoutbox if m.subject.startswith("Assigned to you")]  # asked once, not twice


def test_escalation_tells_the_escalation_group(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(on_timeout="escalate", escalate_to_group="managers")
    start("invoice", {}, user=cast.alice)
    with committed():
        assert review.expire_due(now=timezone.now() + timedelta(days=3)) == 1
    assert to(mailoutbox) == ["dave@example.com"]
    assert mailoutbox[0].subject.startswith("Escalated to you:")


def test_expiry_tells_the_starter_and_the_reviewers(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline(on_timeout="reject")
    start("invoice", {}, user=cast.alice)
    with committed():
        review.expire_due(now=timezone.now() + timedelta(days=3))
    assert to(mailoutbox) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert {m.subject.split(":")[0] for m in mailoutbox} == {"Review expired"}


def test_a_failed_run_tells_the_starter_and_the_run_managers(cast, registered_pipelines, committed, mailoutbox):
    def boom(context):
        raise ValueError("card 4111 declined")  # personal data: not in the email

    registered_pipelines(stepkit("fragile").step("charge", boom))
    with committed():
        start("fragile", {}, user=cast.alice)
    assert to(mailoutbox) == ["alice@example.com", "mgr@example.com"]
    assert "ValueError" in mailoutbox[0].body and "4111" not in mailoutbox[0].body


def test_a_rolled_back_event_writes_and_sends_nothing(cast, invoice_pipeline, committed, mailoutbox):
    invoice_pipeline()
    run = start("invoice", {}, user=cast.alice)
    before = Notification.objects.count()
    with committed(), pytest.raises(RuntimeError), transaction.atomic():
        review.reject(run.checkpoints.get(), cast.bob, comment="no")
        raise RuntimeError("the caller's transaction fails after the decision")
    assert Notification.objects.count() == before and mailoutbox == []


def test_the_same_event_twice_writes_one_notification_and_a_redelivery_sends_nothing(
    cast, invoice_pipeline, committed, mailoutbox
):
    invoice_pipeline()
    with committed():
        run = start("invoice", {}, user=cast.alice)
    cp = run.checkpoints.get()
    with committed():
        notify(NotificationEvent.REVIEW_REQUESTED, run=run, checkpoint=cp, occurrence=cp.pk)  # replayed
    assert Notification.objects.filter(checkpoint=cp).count() == 2 and len(mailoutbox) == 2
    for pk in Notification.objects.values_list("pk", flat=True):
        assert deliver(pk) is False  # a task delivered again: claimed already, sent once
    assert len(mailoutbox) == 2
    assert list(Notification.objects.values_list("attempts", flat=True)) == [1, 1]


def test_no_notifiers_no_notifications(cast, invoice_pipeline, mailoutbox, django_capture_on_commit_callbacks):
    invoice_pipeline()
    with override_settings(STEPKIT={}), django_capture_on_commit_callbacks(execute=True):
        start("invoice", {}, user=cast.alice)
    assert Notification.objects.count() == 0 and mailoutbox == []


def test_a_review_names_its_own_notifiers(cast, registered_pipelines, committed, mailoutbox):
    ops = EmailNotifier(name="ops-mail", to=lambda occasion: ["ops@example.com"])
    registered_pipelines(stepkit("own").step("draft", lambda c: {"x": 1}, review=Review(notify=[ops])))
    with committed():
        start("own", {}, user=cast.alice)
    assert to(mailoutbox) == ["ops@example.com"]  # its own notifier, not STEPKIT["NOTIFIERS"]
    assert Notification.objects.get().channel == "ops-mail"


def test_a_review_with_no_notifiers_tells_nobody(cast, registered_pipelines, committed, mailoutbox):
    registered_pipelines(stepkit("quiet").step("draft", lambda c: {"x": 1}, review=Review(notify=[])))
    with committed():
        start("quiet", {}, user=cast.alice)
    assert mailoutbox == []


def test_emails_are_in_the_notifiers_language(cast, registered_pipelines, committed, mailoutbox):
    french = EmailNotifier(name="mail-fr", language="fr")
    registered_pipelines(
        stepkit("fr").step("draft", lambda c: {"x": 1}, review=Review(notify=[french], assign_to_user="bob"))
    )
    with committed():
        start("fr", {}, user=cast.alice)
    assert mailoutbox[0].subject.startswith("Relecture demandée")


@pytest.mark.django_db(transaction=True)
def test_with_real_transactions_a_commit_sends_and_a_rollback_sends_nothing(cast, invoice_pipeline, mailoutbox):
    invoice_pipeline()
    run = start("invoice", {}, user=cast.alice)  # committed: the reviewers were emailed after the commit
    assert to(mailoutbox) == ["bob@example.com", "carol@example.com"]
    mailoutbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        review.reject(run.checkpoints.get(), cast.bob, comment="no")
        assert Notification.objects.filter(event=NotificationEvent.REJECTED).count() == 1  # written with it
        raise RuntimeError("the caller's transaction fails after the decision")
    assert not Notification.objects.filter(event=NotificationEvent.REJECTED).exists() and mailoutbox == []
    review.reject(run.checkpoints.get(), cast.bob, comment="no")
    assert to(mailoutbox) == ["alice@example.com"]
