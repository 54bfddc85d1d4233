"""The permission matrix: every role against every action, through the API, each on a fresh run."""

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from stepkit_django import start
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun

pytestmark = pytest.mark.django_db

API = "/api/stepkit"
EMAIL = {"message": "secret contents", "customer": "Ada", "to": "ada@example.com"}

# role -> expected status per action (the checkpoint belongs to a run of the editors' email pipeline)
MATRIX = {
    "anonymous": dict.fromkeys(
        ["list", "retrieve", "claim", "edit", "approve", "reject", "reassign", "cancel", "retry", "events"], 401
    ),
    "no permission": {
        "list": 200, "retrieve": 404, "claim": 404, "edit": 404, "approve": 404, "reject": 404,
        "reassign": 404, "cancel": 404, "retry": 404, "events": 404,
    },
    "reviewer outside the group": {
        "list": 200, "retrieve": 404, "claim": 404, "edit": 404, "approve": 404, "reject": 404,
        "reassign": 404, "cancel": 404, "retry": 404, "events": 404,
    },
    "the run's starter": {
        "list": 200, "retrieve": 200, "claim": 403, "edit": 403, "approve": 403, "reject": 403,
        "reassign": 403, "cancel": 200, "retry": 409, "events": 200,
    },
    "assigned reviewer": {
        "list": 200, "retrieve": 200, "claim": 200, "edit": 200, "approve": 200, "reject": 200,
        "reassign": 200, "cancel": 403, "retry": 403, "events": 200,
    },
    "superuser": {
        "list": 200, "retrieve": 200, "claim": 200, "edit": 200, "approve": 200, "reject": 200,
        "reassign": 200, "cancel": 200, "retry": 409, "events": 200,
    },
}  # fmt: skip


def actor(role, people):
    return {
        "anonymous": None,
        "no permission": User.objects.create_user("nobody"),
        "reviewer outside the group": people.dave,
        "the run's starter": people.carol,  # a reviewer in the editors group, who started this run
        "assigned reviewer": people.bob,
        "superuser": people.root,
    }[role]


def call(client, action, run, checkpoint):
    cp, r = f"{API}/checkpoints/{checkpoint.pk}/", f"{API}/runs/{run.pk}/"
    requests = {
        "list": lambda: client.get(f"{API}/checkpoints/"),
        "retrieve": lambda: client.get(cp),
        "claim": lambda: client.post(cp + "claim/"),
        "edit": lambda: client.post(cp + "edit/", {"override_data": {"body": "edited"}}, format="json"),
        "approve": lambda: client.post(cp + "approve/", {}, format="json"),
        "reject": lambda: client.post(cp + "reject/", {}, format="json"),
        "reassign": lambda: client.post(cp + "reassign/", {"to_groups": ["managers"]}, format="json"),
        "cancel": lambda: client.post(r + "cancel/"),
        "retry": lambda: client.post(r + "retry/"),
        "events": lambda: client.get(r + "events/"),
    }
    return requests[action]()


def state():
    return list(Checkpoint.objects.values()), list(PipelineRun.objects.values()), AuditEvent.objects.count()


@pytest.mark.parametrize(("role", "action"), [(role, action) for role, actions in MATRIX.items() for action in actions])
def test_permission_matrix(people, role, action):
    user = actor(role, people)
    starter = people.carol if role == "the run's starter" else people.alice
    run = start("email-approval", EMAIL, user=starter)
    checkpoint = run.checkpoints.get()
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    expected = MATRIX[role][action]
    before = state()
    response = call(client, action, run, checkpoint)
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert state() == before  # a refusal changes nothing
    if action == "list" and expected == 200:
        ids = [item["id"] for item in response.json()["results"]]
        may_see = role in ("the run's starter", "assigned reviewer", "superuser")
        assert (str(checkpoint.pk) in ids) is may_see
        assert "secret contents" not in response.content.decode() or may_see


def test_reviewers_of_one_group_do_not_see_another_groups_contexts_or_events(people, registered_pipelines):
    from stepkit_django import Review, stepkit

    registered_pipelines(
        stepkit("finance").step("s", lambda c: {"iban": "DE00 1234"}, review=Review(assign_to_group="managers"))
    )
    start("finance", {}, user=people.alice)
    start("email-approval", EMAIL, user=people.alice)
    bob = APIClient()
    bob.force_authenticate(people.bob)
    body = bob.get(f"{API}/checkpoints/").content.decode() + bob.get(f"{API}/events/").content.decode()
    assert "finance" not in body and "DE00" not in body
    dave = APIClient()
    dave.force_authenticate(people.dave)
    body = dave.get(f"{API}/checkpoints/").content.decode() + dave.get(f"{API}/events/").content.decode()
    assert "email-approval" not in body and "finance" in body


ADMIN_MATRIX = {
    # role: (changelist status, item listed, review page status, approve outcome)
    "anonymous": (302, False, 302, "refused"),
    "no permission": (403, False, 404, "refused"),  # 404: the item is not revealed
    "reviewer outside the group": (200, False, 404, "refused"),
    "the run's starter": (200, True, 200, "refused"),
    "assigned reviewer": (200, True, 200, "approved"),
    "superuser": (200, True, 200, "approved"),
}


@pytest.mark.parametrize("role", list(ADMIN_MATRIX))
def test_admin_permission_matrix(people, client, role):
    user = actor(role, people)
    if user is not None:
        user.is_staff = True
        user.save()
        client.force_login(user)
    starter = people.carol if role == "the run's starter" else people.alice
    checkpoint = start("email-approval", EMAIL, user=starter).checkpoints.get()
    queue = "/admin/stepkit_django/checkpoint/"
    changelist_status, listed, page_status, outcome = ADMIN_MATRIX[role]
    response = client.get(queue)
    assert response.status_code == changelist_status
    if changelist_status == 200:
        assert (checkpoint in response.context["cl"].result_list) is listed
    assert client.get(f"{queue}{checkpoint.pk}/change/").status_code == page_status
    before = state()
    client.post(
        f"{queue}{checkpoint.pk}/change/",
        {
            "_action": "approve",
            "expected_version": checkpoint.version,
            "edit__subject": "s",
            "edit__body": "b",
            "comment": "",
        },
    )
    checkpoint.refresh_from_db()
    if outcome == "approved":
        assert checkpoint.status == "approved"
    else:
        assert checkpoint.status == "pending" and state() == before
