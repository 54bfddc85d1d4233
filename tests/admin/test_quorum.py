"""The admin with a per-group quorum: the progress per group, and members of a group that has approved told so."""

import pytest

from stepkit_django import Review, start, stepkit
from stepkit_django.models import Checkpoint
from stepkit_django.status import CheckpointStatus

pytestmark = pytest.mark.django_db

QUEUE = "/admin/stepkit_django/checkpoint/"


def paused(registered_pipelines, people, **options):
    options = {"approvals_required": {"legal": 1, "finance": 1}, "title": "Sign the lease", "editable": [], **options}
    registered_pipelines(stepkit("signed").step("contract", lambda c: {"amount": 5000}, review=Review(**options)))
    return start("signed", {}, user=people.alice).checkpoints.get()


@pytest.fixture
def log_in(client, signers):
    def as_user(name):
        user = getattr(signers, name)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        client.force_login(user)
        return client

    return as_user


def page(cp):
    return f"{QUEUE}{cp.pk}/change/"


def test_the_queue_shows_each_groups_count(registered_pipelines, signers, log_in):
    cp = paused(registered_pipelines, signers)
    client = log_in("lena")
    client.post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    html = client.get(QUEUE).content.decode()
    assert "legal 1/1 · finance 0/1" in html


def test_the_queue_reads_the_approvals_of_a_page_in_one_query(
    registered_pipelines, signers, log_in, django_assert_max_num_queries
):
    paused(registered_pipelines, signers)
    for _ in range(4):
        start("signed", {}, user=signers.alice)
    client = log_in("fiona")
    client.get(QUEUE)  # warm the caches (sessions, content types)
    with django_assert_max_num_queries(12) as captured:
        assert client.get(QUEUE).status_code == 200
    approvals = [q["sql"] for q in captured.captured_queries if "stepkit_django_approval" in q["sql"].split("FROM")[-1]]
    assert len(approvals) == 1  # not one per row


def test_approving_says_which_group_is_still_awaited(registered_pipelines, signers, log_in):
    cp = paused(registered_pipelines, signers)
    response = log_in("lena").post(
        page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""}, follow=True
    )
    said = [str(m) for m in response.context["messages"]]
    assert any("legal 1/1 · finance 0/1, waiting for finance" in m for m in said), said


def test_a_member_of_a_group_that_has_approved_is_told_so_and_offered_no_approve_button(
    registered_pipelines, signers, log_in
):
    cp = paused(registered_pipelines, signers)
    log_in("lena").post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    html = log_in("lars").get(page(cp)).content.decode()
    assert 'id="quorum-refusal"' in html
    assert "legal already gave the approvals it needs; the item now waits for finance." in html
    assert 'value="approve"' not in html
    assert 'value="reject"' in html  # still a reviewer: rejecting stays possible
    assert "Lena" in html or "lena" in html
    assert "for legal" in html  # who approved, and for which group


def test_a_forced_approval_from_a_met_group_is_refused_with_a_message(registered_pipelines, signers, log_in):
    cp = paused(registered_pipelines, signers)
    log_in("lena").post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    cp = Checkpoint.objects.get(pk=cp.pk)
    response = log_in("lars").post(
        page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""}, follow=True
    )
    assert response.status_code == 200
    said = [str(m) for m in response.context["messages"]]
    assert any("legal already gave the approvals it needs" in m for m in said), said
    assert Checkpoint.objects.get(pk=cp.pk).approvals.count() == 1


def test_the_second_group_decides_it(registered_pipelines, signers, log_in):
    cp = paused(registered_pipelines, signers)
    log_in("lena").post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    cp = Checkpoint.objects.get(pk=cp.pk)
    log_in("fiona").post(page(cp), {"_action": "approve", "expected_version": cp.version, "comment": ""})
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED


def test_the_pipelines_page_says_the_groups_in_words(registered_pipelines, signers, client):
    paused(registered_pipelines, signers)
    client.force_login(signers.root)
    html = client.get("/admin/stepkit_django/pipelinerun/pipelines/signed/").content.decode()
    assert "1 from legal, 1 from finance" in html
    assert "group legal, group finance" in html
