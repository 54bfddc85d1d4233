"""Notifications in the admin: the read-only list (only what each person may see), "Send again" for run managers,
the review page's "Notifications" section and the queue overview's count of failed deliveries."""

from typing import ClassVar

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.text import capfirst

from stepkit_django import Review, permissions, review, start, stepkit
from stepkit_django.models import Checkpoint, Notification
from stepkit_django.notifications import EmailNotifier
from stepkit_django.notifications.events import notification_key, retry_failed
from stepkit_django.status import NotificationEvent, NotificationStatus
from tests.admin.test_french import french  # noqa: F401  # a fixture: LocaleMiddleware, then English again

pytestmark = pytest.mark.django_db

LIST = "/admin/stepkit_django/notification/"
OVERVIEW = "/admin/stepkit_django/checkpoint/overview/"


class Pager(EmailNotifier):
    """Tells the same people as the email, and fails while ``down``."""

    default_name = "pager"
    down: ClassVar[bool] = False
    sent: ClassVar[list[str]] = []

    def send(self, notification, message):
        if Pager.down:
            raise ConnectionError("the pager service did not answer")
        Pager.sent.append(notification.address)


@pytest.fixture
def notifying(settings):
    """Email (locmem) and the pager for every review; a failed attempt is the last one."""
    Pager.down, Pager.sent = True, []
    notifiers = {
        "email": {"BACKEND": "stepkit_django.notifications.EmailNotifier"},
        "pager": {"BACKEND": f"{__name__}.Pager"},
    }
    with override_settings(STEPKIT={**settings.STEPKIT, "NOTIFIERS": notifiers, "NOTIFY_MAX_ATTEMPTS": 1}):
        yield Pager


@pytest.fixture
def cast(people):
    """The review cast, staff, with email addresses; alice may start runs; ``mgr`` is a run manager."""
    manage = Permission.objects.get(content_type__app_label="stepkit_django", codename="manage_pipelinerun")
    people.alice.user_permissions.add(
        Permission.objects.get(content_type__app_label="stepkit_django", codename="add_pipelinerun")
    )
    mgr = User.objects.create_user("mgr", password="pw", is_staff=True)
    mgr.user_permissions.add(manage)
    for user in User.objects.all():
        user.email = f"{user.username}@example.com"
        user.is_staff = True
        user.save(update_fields=["email", "is_staff"])
    for name in ("alice", "bob", "carol", "dave", "eve", "root", "mgr"):
        setattr(people, name, User.objects.get(username=name))
    return people


@pytest.fixture
def pipelines(registered_pipelines):
    """``invoice`` (the editors review it), ``salary`` (the managers), ``two-desks`` (editors, then managers)."""
    registered_pipelines(
        stepkit("invoice").step(
            "draft", lambda c: {"payee": "ACME"}, review=Review(title="Pay {payee}", assign_to_group="editors")
        )
    )
    registered_pipelines(
        stepkit("salary").step(
            "raise", lambda c: {"who": "Zoe"}, review=Review(title="Raise for {who}", assign_to_group="managers")
        )
    )
    registered_pipelines(
        stepkit("two-desks")
        .step("first", lambda c: {"n": 1}, review=Review(title="First desk", assign_to_group="editors"))
        .step("second", lambda c: {"n": 2}, review=Review(title="Second desk", assign_to_group="managers"))
    )


@pytest.fixture
def told(cast, pipelines, notifying, django_capture_on_commit_callbacks):
    """An invoice and a salary review requested (emails sent, pages failed), and a two-desks run past its first
    desk (bob approved it; its second desk asks the managers)."""

    def begin(name):
        with django_capture_on_commit_callbacks(execute=True):
            return start(name, {}, user=cast.alice)

    invoice, salary, two = begin("invoice"), begin("salary"), begin("two-desks")
    with django_capture_on_commit_callbacks(execute=True):
        review.approve(two.checkpoints.get(), cast.bob)
    return {"invoice": invoice.checkpoints.get(), "salary": salary.checkpoints.get(), "two": two}


def listed(client, query=""):
    response = client.get(LIST + query)
    assert response.status_code == 200, response.status_code
    return response, {n.pk for n in response.context["cl"].result_list}


def of(**lookups):
    return set(Notification.objects.filter(**lookups).values_list("pk", flat=True))


# -- who sees what -----------------------------------------------------------------------------


def test_a_reviewer_lists_the_notifications_of_their_own_items_only(cast, told, client):
    first, second = told["two"].checkpoints.order_by("created_at")
    client.force_login(cast.bob)
    _, seen = listed(client)
    # The invoice (editors) and the two-desks run's first desk, not the managers' salary nor its second desk,
    # although bob may see that run: nothing of another group's items.
    assert seen == of(checkpoint__in=[told["invoice"], first])
    assert not seen & of(checkpoint__in=[told["salary"], second])
    assert of(checkpoint=second)  # the managers were told of it


def test_the_starter_sees_the_notifications_of_their_runs_and_a_run_manager_all(cast, told, client):
    client.force_login(cast.alice)
    assert listed(client)[1] == of()  # alice started every run
    client.force_login(cast.dave)
    assert listed(client)[1] == of(
        checkpoint__pipeline_name__in=["salary", "two-desks"], checkpoint__step__in=["raise", "second"]
    )
    client.force_login(cast.mgr)
    assert listed(client)[1] == of()


def test_a_notification_of_another_group_s_item_does_not_open(cast, told, client):
    theirs = Notification.objects.filter(checkpoint=told["salary"]).first()
    client.force_login(cast.bob)
    response = client.get(f"{LIST}{theirs.pk}/change/", follow=True)
    assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"  # as if it did not exist
    assert "Raise for Zoe" not in response.content.decode()
    client.force_login(cast.dave)
    assert "Raise for Zoe" in client.get(f"{LIST}{theirs.pk}/change/").content.decode()


def test_a_reviewer_sees_their_own_digest_and_nobody_else_s(cast, told, client, django_capture_on_commit_callbacks):
    from stepkit_django.notifications.digest import send_digests

    with django_capture_on_commit_callbacks(execute=True):
        assert send_digests() > 0
    digests = Notification.objects.filter(event=NotificationEvent.DIGEST)
    assert digests.filter(recipient=cast.bob).exists() and digests.filter(recipient=cast.dave).exists()
    client.force_login(cast.bob)
    response, seen = listed(client, "?event__exact=digest")
    assert seen == of(event=NotificationEvent.DIGEST, recipient=cast.bob)
    assert "Daily digest" in response.content.decode()
    client.force_login(cast.mgr)
    assert listed(client, "?event__exact=digest")[1] == of(event=NotificationEvent.DIGEST)


def test_someone_without_a_stepkit_permission_cannot_open_the_list(cast, told, client):
    client.force_login(cast.eve)  # an editor without the review permission
    assert client.get(LIST).status_code == 403


def test_nobody_adds_changes_or_deletes_a_notification(cast, told, client):
    client.force_login(cast.root)
    notification = Notification.objects.filter(status=NotificationStatus.FAILED).first()
    assert client.get(LIST + "add/").status_code == 403
    assert client.get(f"{LIST}{notification.pk}/delete/").status_code == 403
    page = client.get(f"{LIST}{notification.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and "the pager service did not answer" in html
    assert client.post(f"{LIST}{notification.pk}/change/", {"status": "sent"}).status_code == 403
    assert Notification.objects.get(pk=notification.pk).status == NotificationStatus.FAILED


def test_the_list_says_who_was_told_what_in_plain_words_and_the_reader_s_time_zone(cast, told, client):
    client.force_login(cast.bob)
    with override_settings(TIME_ZONE="Europe/Paris"):
        response, _ = listed(client)
    html = response.content.decode()
    for words in (
        "Review requested",
        "Not delivered: 1 attempt failed",
        "the pager service did not answer",
        "Pay ACME",
    ):
        assert words in html
    assert "Sent " in html
    sent = Notification.objects.filter(status=NotificationStatus.SENT).first()
    assert timezone.localtime(sent.sent_at, timezone.get_fixed_timezone(60)).isoformat() in html  # +01:00
    # The column headings are words, not field names.
    headings = [capfirst(str(column["text"])) for column in response.context["result_headers"]]
    assert [heading for heading in headings if heading] == [
        "When",
        "Event",
        "Told",
        "Channel",
        "Status",
        "Attempts",
        "Last error",
        "Sent",
        "Review item",
        "Run",
    ]


def test_filters_and_the_search_by_recipient(cast, told, client):
    client.force_login(cast.root)
    assert listed(client, "?status__exact=failed")[1] == of(status=NotificationStatus.FAILED) != set()
    assert listed(client, "?channel=email")[1] == of(channel="email")
    assert listed(client, "?event__exact=approved")[1] == of(event=NotificationEvent.APPROVED) != set()
    assert listed(client, "?q=carol")[1] == of(recipient=cast.carol) != set()


def test_the_list_query_count_does_not_grow_with_rows(cast, told, client, django_capture_on_commit_callbacks):
    client.force_login(cast.bob)

    def count():
        with CaptureQueriesContext(connection) as queries:
            listed(client)
        return len(queries)

    few = count()
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            start("invoice", {}, user=cast.alice)
    assert len(listed(client)[1]) > 4
    assert count() == few


# -- send again ----------------------------------------------------------------------------------


def post_action(client, pks):
    return client.post(LIST, {"action": "send_again", ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]}, follow=True)


def test_a_run_manager_sends_failed_notifications_again(cast, told, client, django_capture_on_commit_callbacks):
    failed = sorted(of(status=NotificationStatus.FAILED, checkpoint=told["invoice"]))
    sent = sorted(of(status=NotificationStatus.SENT, checkpoint=told["invoice"]))
    assert len(failed) == 2 and sent  # bob's and carol's pages; their emails went out
    Pager.down = False
    client.force_login(cast.mgr)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(client, failed + sent[:1])
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["2 failed notifications are being sent again. 1 other had not failed and was left as it was."]
    again = Notification.objects.filter(pk__in=failed)
    # Handed to the executor (inline: sent at once), through the one delivery function, one more attempt each.
    assert {(n.status, n.attempts) for n in again} == {(NotificationStatus.SENT, 2)}
    assert sorted(Pager.sent) == ["bob@example.com", "carol@example.com"]
    assert Notification.objects.get(pk=sent[0]).attempts == 1  # left alone


def test_sending_again_fails_again_while_the_channel_is_down(cast, told, client, django_capture_on_commit_callbacks):
    failed = sorted(of(status=NotificationStatus.FAILED, checkpoint=told["invoice"]))
    client.force_login(cast.root)
    with django_capture_on_commit_callbacks(execute=True):
        post_action(client, failed)
    assert {(n.status, n.attempts) for n in Notification.objects.filter(pk__in=failed)} == {
        (NotificationStatus.FAILED, 2)
    }


def test_only_run_managers_may_send_again(cast, told, client, django_capture_on_commit_callbacks):
    failed = sorted(of(status=NotificationStatus.FAILED, checkpoint=told["invoice"]))
    Pager.down = False
    client.force_login(cast.bob)
    response, _ = listed(client)
    assert response.context["action_form"] is None  # no action is offered
    with django_capture_on_commit_callbacks(execute=True):
        post_action(client, failed)
    assert of(pk__in=failed, status=NotificationStatus.FAILED) == set(failed)
    assert not permissions.can_retry_notifications(cast.bob)
    assert permissions.can_retry_notifications(cast.mgr) and permissions.can_retry_notifications(cast.root)


def test_selecting_nothing_that_failed_says_so(cast, told, client):
    client.force_login(cast.mgr)
    response = post_action(client, sorted(of(status=NotificationStatus.SENT))[:2])
    assert [str(m) for m in response.context["messages"]] == [
        "None of the selected notifications had failed: nothing to send."
    ]


def test_retry_puts_back_only_failed_notifications_and_sends_after_the_commit(
    cast, told, django_capture_on_commit_callbacks
):
    failed = sorted(of(status=NotificationStatus.FAILED))
    sent = sorted(of(status=NotificationStatus.SENT))
    Pager.down = False
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert retry_failed(failed + sent) == failed
        assert of(pk__in=failed, status=NotificationStatus.PENDING) == set(failed)  # not sent before the commit
    assert not Pager.sent and len(callbacks) == 1
    callbacks[0]()
    assert of(pk__in=failed, status=NotificationStatus.SENT) == set(failed)
    assert retry_failed(failed) == []


# -- the review page and the overview ---------------------------------------------------------------


def review_page(client, checkpoint):
    response = client.get(f"/admin/stepkit_django/checkpoint/{checkpoint.pk}/change/")
    assert response.status_code == 200
    return response


def test_the_review_page_lists_who_was_told_what_with_failures_marked(cast, told, client):
    client.force_login(cast.bob)
    response = review_page(client, told["invoice"])
    rows = response.context["notifications"]
    assert {(row["who"], row["channel"], row["status"]) for row in rows} == {
        (name, channel, status)
        for name in ("bob", "carol")
        for channel, status in (("email", "sent"), ("pager", "failed"))
    }
    html = response.content.decode()
    assert 'id="notifications"' in html
    assert "<strong>Not delivered: 1 attempt failed</strong>" in html
    assert "ConnectionError: the pager service did not answer" in html


def test_the_review_page_has_no_notifications_section_without_notifications(people, client, registered_pipelines):
    registered_pipelines(stepkit("quiet").step("s", lambda c: {"n": 1}, review=Review()))
    checkpoint = start("quiet", {}, user=people.alice).checkpoints.get()
    client.force_login(people.root)
    response = review_page(client, checkpoint)
    assert response.context["notifications"] == []
    assert 'id="notifications"' not in response.content.decode()


def test_the_review_page_reads_its_notifications_in_one_query(cast, told, client):
    checkpoint = told["invoice"]
    client.force_login(cast.root)

    def count():
        with CaptureQueriesContext(connection) as queries:
            review_page(client, checkpoint)
        return [q["sql"] for q in queries.captured_queries]

    few = count()
    Notification.objects.bulk_create(
        Notification(
            key=notification_key("due_soon", n, "email", f"user:{cast.dave.pk}"),
            event=NotificationEvent.DUE_SOON,
            channel="email",
            recipient=cast.dave,
            address="dave@example.com",
            run=checkpoint.run,
            checkpoint=checkpoint,
        )
        for n in range(6)
    )
    many = count()
    assert len(review_page(client, checkpoint).context["notifications"]) == 10
    assert len(many) == len(few)
    assert len([sql for sql in many if 'FROM "stepkit_django_notification"' in sql]) == 1


def test_the_overview_counts_the_failed_deliveries_one_may_see(cast, told, client):
    client.force_login(cast.bob)
    html = client.get(OVERVIEW).content.decode()
    mine = Notification.objects.visible_to(cast.bob).filter(status=NotificationStatus.FAILED).count()
    assert mine == 5  # the pages to bob and carol of the invoice and of the first desk, and alice's "approved"
    assert f'<strong id="failed-notifications-total">{mine}</strong> notifications could not be delivered.' in html
    assert f'href="{LIST}?status__exact=failed"' in html
    client.force_login(cast.root)
    html = client.get(OVERVIEW).content.decode()
    assert f'<strong id="failed-notifications-total">{of(status="failed").__len__()}</strong>' in html


def test_the_overview_says_when_nothing_failed(people, client):
    client.force_login(people.root)
    html = client.get(OVERVIEW).content.decode()
    assert '<strong id="failed-notifications-total">0</strong> notifications could not be delivered.' in html
    assert "failed-notifications-link" not in html


@pytest.mark.usefixtures("french")
def test_the_notifications_admin_in_french(cast, told, client):
    client.force_login(cast.bob)
    response = client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr")
    html = response.content.decode()
    assert "Non remise" in html and "Destinataire" in html
    review = client.get(f"/admin/stepkit_django/checkpoint/{told['invoice'].pk}/change/", HTTP_ACCEPT_LANGUAGE="fr")
    assert "Qui a été prévenu" in review.content.decode()


def test_checkpoint_is_visible_to_the_same_people_as_its_notifications(cast, told):
    # The list's rule and the queue's agree for each reviewer.
    for user in (cast.bob, cast.carol, cast.dave):
        queue = set(Checkpoint.objects.for_user(user).values_list("pk", flat=True))
        for notification in Notification.objects.visible_to(user).exclude(checkpoint=None):
            assert notification.checkpoint_id in queue
