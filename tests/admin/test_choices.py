"""The admin with ``Review(choices=...)``: a button per choice on the review page, bulk approval refused."""

import re

import pytest
from django.urls import reverse

from stepkit_django import Review, start, stepkit, when
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus

pytestmark = pytest.mark.django_db

QUEUE = "/admin/stepkit_django/checkpoint/"
ACTIONS = {"publish": "Publish now", "hide": "Hide", "escalate": "Escalate"}


@pytest.fixture
def bob(people, client):
    people.bob.is_staff = True
    people.bob.save(update_fields=["is_staff"])
    client.force_login(people.bob)
    return client


def paused(registered_pipelines, people, **options):
    registered_pipelines(
        stepkit("choosing")
        .step(
            "draft",
            lambda c: {"text": "Hello"},
            review=Review(choices=ACTIONS, choice_key="action", editable=[], **options),
        )
        .branch_on(
            "route",
            when(lambda c: "publish" in c["action"], lambda b: b.step("publish", lambda c: {"status": "published"})),
            when(lambda c: True, lambda b: b.step("other", lambda c: {"status": "not published"})),
        )
    )
    return start("choosing", {}, user=people.alice).checkpoints.get()


def page(cp):
    return f"{QUEUE}{cp.pk}/change/"


def buttons(html):
    return re.findall(r"<button[^>]*>[^<]*</button>", html)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_the_review_page_shows_one_button_per_choice_the_first_as_the_default(registered_pipelines, people, bob):
    cp = paused(registered_pipelines, people)
    html = bob.get(page(cp)).content.decode()
    shown = [b for b in buttons(html) if 'name="_choice"' in b]
    assert [re.search(r">([^<]*)<", b).group(1) for b in shown] == list(ACTIONS.values())
    assert 'class="button default"' in shown[0] and all('class="button"' in b for b in shown[1:])
    assert 'value="approve"' not in html  # no approval without a choice


def test_pressing_a_choice_approves_with_it_and_the_run_goes_that_way(registered_pipelines, people, bob):
    cp = paused(registered_pipelines, people)
    response = bob.post(page(cp), {"expected_version": cp.version, "comment": "", "_choice": "publish"}, follow=True)
    assert response.status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.APPROVED
    run = PipelineRun.objects.get(pk=cp.run_id)
    assert run.status == RunStatus.COMPLETED and run.context["status"] == "published"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"_choice": "delete"}, "“delete” is not one of the choices"),
        ({"_action": "approve"}, "Choose what happens next"),
    ],
)
def test_an_unknown_or_missing_choice_is_refused_with_a_message_and_changes_nothing(
    registered_pipelines, people, bob, data, said
):
    cp = paused(registered_pipelines, people)
    before = list(Checkpoint.objects.values()), AuditEvent.objects.count()
    response = bob.post(page(cp), {"expected_version": cp.version, "comment": "", **data})
    assert response.status_code == 200
    assert "The decision was refused; see the errors below." in messages_of(response)
    assert said in response.content.decode()
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_several_choices_are_checkboxes_with_one_approve_button(registered_pipelines, people, bob):
    cp = paused(registered_pipelines, people, multiple=True)
    html = bob.get(page(cp)).content.decode()
    assert html.count('type="checkbox" name="_choice"') == 3
    assert not [b for b in buttons(html) if 'name="_choice"' in b]
    assert 'value="approve"' in html
    data = {"expected_version": cp.version, "comment": "", "_action": "approve", "_choice": ["escalate", "publish"]}
    bob.post(page(cp), data)
    assert PipelineRun.objects.get(pk=cp.run_id).context["action"] == ["publish", "escalate"]


def test_bulk_approval_refuses_the_items_that_need_a_choice_and_names_them(registered_pipelines, people, bob):
    cp = paused(registered_pipelines, people)
    selected = {"action": "approve_selected", "_selected_action": [str(cp.pk)], f"version-{cp.pk}": str(cp.version)}
    confirmation = bob.post(QUEUE, selected).content.decode()
    assert 'id="bulk-need-a-choice"' in confirmation and "Choosing: draft" in confirmation
    response = bob.post(QUEUE, {**selected, "confirmed": "yes"}, follow=True)
    assert any("Choosing: draft: it needs a choice; open it to choose" in m for m in messages_of(response))
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING


def test_the_pipelines_page_lists_the_choices_in_the_review_rules(registered_pipelines, people, admin_client):
    paused(registered_pipelines, people, multiple=True)
    html = admin_client.get(reverse("admin:stepkit_django_pipeline", args=["choosing"])).content.decode()
    assert "Publish now, Hide, Escalate" in html and "one or more" in html
