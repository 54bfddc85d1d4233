"""Bulk approve and reject in the queue go through a confirmation page that lists the items."""

import pytest

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}
QUEUE = "/admin/stepkit_django/checkpoint/"


@pytest.fixture
def bob(people, client):
    for user in (people.bob, people.carol, people.alice):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


def paused(people, n):
    return [start("email-approval", EMAIL, user=people.alice).checkpoints.get() for _ in range(n)]


def bulk(action, checkpoints, versions=None, **extra):
    """The POST of a bulk action on the queue page, with each row's listed version."""
    data = {"action": action, "_selected_action": [str(c.pk) for c in checkpoints], **extra}
    for c in checkpoints:
        data[f"version-{c.pk}"] = str((versions or {}).get(c.pk, c.version))
    return data


def confirmed(action, checkpoints, versions=None, **extra):
    return bulk(action, checkpoints, versions, confirmed="yes", **extra)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def snapshot():
    return list(Checkpoint.objects.values()), AuditEvent.objects.count()


def test_bulk_approve_first_shows_the_selected_items_and_decides_nothing(people, bob):
    cps = paused(people, 2)
    before = snapshot()
    response = bob.post(QUEUE, bulk("approve_selected", cps))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Approve these items?" in html and "Yes, approve them" in html
    assert html.count('name="_selected_action"') == 2
    for cp in cps:  # the versions the queue listed travel with the confirmation
        assert f'name="version-{cp.pk}" value="{cp.version}"' in html
    assert snapshot() == before


def test_confirmed_bulk_approve_decides_each_item_through_the_services(people, bob):
    cps = paused(people, 3)
    review.claim(cps[1], people.carol)
    cps = [Checkpoint.objects.get(pk=c.pk) for c in cps]  # as the queue page lists them now
    response = bob.post(QUEUE, confirmed("approve_selected", cps), follow=True)
    done, refused = messages_of(response)
    assert done.startswith("Approved 2 items:")
    assert refused.startswith("1 item was not decided:") and "claimed by carol" in refused
    assert AuditEvent.objects.filter(action="approved", actor=people.bob).count() == 2
    assert SideEffect.objects.count() == 2


def test_bulk_approve_refuses_an_item_edited_since_the_queue_listed_it(people, bob):
    cps = paused(people, 2)
    listed = {c.pk: c.version for c in cps}
    review.edit(cps[0], people.carol, {"body": "changed after bob saw the list"})
    response = bob.post(QUEUE, confirmed("approve_selected", cps, listed), follow=True)
    done, refused = messages_of(response)
    assert done.startswith("Approved 1 item:") and "changed since you loaded it" in refused
    assert Checkpoint.objects.get(pk=cps[0].pk).status == CheckpointStatus.PENDING
    # selected without its listed version ("select all" across pages): refused too
    data = confirmed("approve_selected", [cps[0]])
    del data[f"version-{cps[0].pk}"]
    [message] = messages_of(bob.post(QUEUE, data, follow=True))
    assert "Open it to see its data before deciding it" in message


def test_bulk_reject_asks_for_a_reason_and_records_it(people, bob):
    cps = paused(people, 2)
    response = bob.post(QUEUE, bulk("reject_selected", cps))
    assert "Reject these items?" in response.content.decode() and 'name="comment"' in response.content.decode()
    response = bob.post(QUEUE, confirmed("reject_selected", cps, comment="Duplicate requests"), follow=True)
    assert messages_of(response)[0].startswith("Rejected 2 items:")
    assert PipelineRun.objects.filter(status=RunStatus.REJECTED).count() == 2
    assert set(AuditEvent.objects.filter(action="rejected").values_list("note", flat=True)) == {"Duplicate requests"}


def test_bulk_reject_without_a_required_reason_shows_the_page_again_and_changes_nothing(
    people, bob, registered_pipelines
):
    registered_pipelines(
        stepkit("pay").step("check", lambda c: {"ok": True}, review=Review(require_reject_reason=True))
    )
    cps = [start("pay", {}, user=people.alice).checkpoints.get() for _ in range(2)]
    before = snapshot()
    response = bob.post(QUEUE, confirmed("reject_selected", cps, comment="  "))
    assert response.status_code == 200
    assert "one of them requires a reason" in response.content.decode()
    assert snapshot() == before
