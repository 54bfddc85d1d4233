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
        ["list", "retrieve", "claim", "edit", "approve", "reject", "request_changes", "reassign", "cancel", "retry",
         "events", "rerun"], 401
    ),
    "no permission": {
        "list": 200, "retrieve": 404, "claim": 404, "edit": 404, "approve": 404, "reject": 404, "request_changes": 404,
        "reassign": 404, "cancel": 404, "retry": 404, "events": 404, "rerun": 404,
    },
    "reviewer outside the group": {
        "list": 200, "retrieve": 404, "claim": 404, "edit": 404, "approve": 404, "reject": 404, "request_changes": 404,
        "reassign": 404, "cancel": 404, "retry": 404, "events": 404, "rerun": 404,
    },
    "the run's starter": {
        "list": 200, "retrieve": 200, "claim": 403, "edit": 403, "approve": 403, "reject": 403, "request_changes": 403,
        "reassign": 403, "cancel": 200, "retry": 409, "events": 200, "rerun": 201,
    },
    "assigned reviewer": {
        "list": 200, "retrieve": 200, "claim": 200, "edit": 200, "approve": 200, "reject": 200, "request_changes": 200,
        "reassign": 403, "cancel": 403, "retry": 403, "events": 200, "rerun": 403,
    },
    "assigned reviewer who may reassign": {
        "list": 200, "retrieve": 200, "claim": 200, "edit": 200, "approve": 200, "reject": 200, "request_changes": 200,
        "reassign": 200, "cancel": 403, "retry": 403, "events": 200, "rerun": 403,
    },
    "superuser": {
        "list": 200, "retrieve": 200, "claim": 200, "edit": 200, "approve": 200, "reject": 200, "request_changes": 200,
        "reassign": 200, "cancel": 200, "retry": 409, "events": 200, "rerun": 201,
    },
}  # fmt: skip


def actor(role, people):
    return {
        "anonymous": None,
        "no permission": User.objects.create_user("nobody"),
        "reviewer outside the group": people.dave,
        "the run's starter": people.carol,  # a reviewer in the editors group, who started this run
        "assigned reviewer": people.bob,
        "assigned reviewer who may reassign": people.grant_reassign("carol"),
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
        "request_changes": lambda: client.post(cp + "request-changes/", {"comment": "Shorter"}, format="json"),
        "reassign": lambda: client.post(cp + "reassign/", {"to_groups": ["managers"]}, format="json"),
        "cancel": lambda: client.post(r + "cancel/"),
        "retry": lambda: client.post(r + "retry/"),
        "events": lambda: client.get(r + "events/"),
        "rerun": lambda: client.post(cp + "rerun/", {}, format="json"),
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
        may_see = role in ("the run's starter", "assigned reviewer", "assigned reviewer who may reassign", "superuser")
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


ADMIN = "/admin/stepkit_django"
# role -> action -> (status, effect). Pages: the status of the GET, effect "listed"/"hidden" for the item.
# Actions: the status of the POST and whether the database changed ("done") or not ("refused").
ADMIN_MATRIX = {
    "anonymous": {
        "list": (302, "hidden"), "retrieve": (302, "hidden"), "claim": (302, "refused"), "edit": (302, "refused"),
        "approve": (302, "refused"), "reject": (302, "refused"), "request_changes": (302, "refused"),
        "reassign": (302, "refused"),
        "cancel": (302, "refused"), "retry": (302, "refused"), "events": (302, "hidden"), "rerun": (302, "refused"),
    },
    "no permission": {
        "list": (403, "hidden"), "retrieve": (404, "hidden"), "claim": (404, "refused"), "edit": (404, "refused"),
        "approve": (404, "refused"), "reject": (404, "refused"), "request_changes": (404, "refused"),
        "reassign": (404, "refused"),
        "cancel": (403, "refused"), "retry": (403, "refused"), "events": (403, "hidden"), "rerun": (404, "refused"),
    },
    "reviewer outside the group": {
        "list": (200, "hidden"), "retrieve": (404, "hidden"), "claim": (404, "refused"), "edit": (404, "refused"),
        "approve": (404, "refused"), "reject": (404, "refused"), "request_changes": (404, "refused"),
        "reassign": (404, "refused"),
        "cancel": (302, "refused"), "retry": (302, "refused"), "events": (302, "hidden"), "rerun": (404, "refused"),
    },
    "the run's starter": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "refused"), "edit": (302, "refused"),
        "approve": (302, "refused"), "reject": (302, "refused"), "request_changes": (302, "refused"),
        "reassign": (302, "refused"),
        "cancel": (302, "done"), "retry": (302, "refused"), "events": (200, "listed"), "rerun": (302, "done"),
    },
    "assigned reviewer": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "refused"),
        "cancel": (302, "refused"), "retry": (302, "refused"), "events": (200, "listed"), "rerun": (302, "refused"),
    },
    "assigned reviewer who may reassign": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "done"),
        "cancel": (302, "refused"), "retry": (302, "refused"), "events": (200, "listed"), "rerun": (302, "refused"),
    },
    "superuser": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "done"),
        "cancel": (302, "done"), "retry": (302, "refused"), "events": (200, "listed"), "rerun": (302, "done"),
    },
}  # fmt: skip


def review_page_posts(checkpoint):
    """What a review page (the admin's, the inbox's) posts for each action."""
    version = checkpoint.version
    edits = {"edit__subject": "Re: m", "edit__body": "edited", "comment": ""}
    return {
        "claim": {"_action": "claim", "expected_version": version},
        "edit": {"_action": "edit", "expected_version": version, **edits},
        "approve": {"_action": "approve", "expected_version": version, **edits},
        "reject": {"_action": "reject", "expected_version": version, **edits},
        "request_changes": {"_action": "request_changes", "expected_version": version, **edits, "comment": "Shorter"},
        "reassign": {"_action": "reassign", "expected_version": version, "reassign-to_groups": ["managers"]},
    }


def admin_call(client, action, run, checkpoint):
    """Do ``action`` through the admin; return (status, effect) as in ADMIN_MATRIX."""
    page = f"{ADMIN}/checkpoint/{checkpoint.pk}/change/"
    if action in ("list", "retrieve", "events"):
        url = {
            "list": f"{ADMIN}/checkpoint/",
            "retrieve": page,
            "events": f"{ADMIN}/pipelinerun/{run.pk}/change/",
        }[action]
        response = client.get(url)
        shown = response.status_code == 200 and (
            checkpoint in response.context["cl"].result_list if action == "list" else True
        )
        if action == "events" and response.status_code == 200:
            trail = client.get(f"{ADMIN}/auditevent/")  # the audit trail lists this run's events too
            listed = {e.run_id for e in trail.context["cl"].result_list}
            assert (run.pk in listed) is shown
        return response.status_code, "listed" if shown else "hidden"
    before = state()
    data = {
        **review_page_posts(checkpoint),
        "cancel": {"action": "cancel_runs", "_selected_action": [str(run.pk)]},
        "retry": {"action": "retry_runs", "_selected_action": [str(run.pk)]},
        "rerun": {},
    }[action]
    url = f"{ADMIN}/pipelinerun/" if action in ("cancel", "retry") else page
    if action == "rerun":
        url, data = f"{ADMIN}/pipelinerun/{run.pk}/rerun/{checkpoint.pk}/", {}
    response = client.post(url, data)
    return response.status_code, "refused" if state() == before else "done"


@pytest.mark.parametrize(
    ("role", "action"), [(role, action) for role, actions in ADMIN_MATRIX.items() for action in actions]
)
def test_admin_permission_matrix(people, client, role, action):
    user = actor(role, people)
    if user is not None:
        user.is_staff = True
        user.save()
        client.force_login(user)
    starter = people.carol if role == "the run's starter" else people.alice
    run = start("email-approval", EMAIL, user=starter)
    checkpoint = run.checkpoints.get()
    assert admin_call(client, action, run, checkpoint) == ADMIN_MATRIX[role][action]


INBOX = "/review"
INBOX_ACTIONS = ["list", "retrieve", "claim", "edit", "approve", "reject", "request_changes", "reassign"]
# The inbox (stepkit_django.inbox), for users who are not staff: role -> action -> (status, effect) as in
# ADMIN_MATRIX. A user without a review permission gets its 403 page, even for an item they cannot see.
INBOX_MATRIX = {
    "anonymous": {action: (302, "hidden" if action in ("list", "retrieve") else "refused") for action in INBOX_ACTIONS},
    "no permission": {action: (403, "hidden" if action in ("list", "retrieve") else "refused")
                      for action in INBOX_ACTIONS},
    "reviewer outside the group": {
        "list": (200, "hidden"), "retrieve": (404, "hidden"), "claim": (404, "refused"), "edit": (404, "refused"),
        "approve": (404, "refused"), "reject": (404, "refused"), "request_changes": (404, "refused"),
        "reassign": (404, "refused"),
    },
    "the run's starter": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "refused"), "edit": (302, "refused"),
        "approve": (302, "refused"), "reject": (302, "refused"), "request_changes": (302, "refused"),
        "reassign": (302, "refused"),
    },
    "assigned reviewer": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "refused"),
    },
    "assigned reviewer who may reassign": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "done"),
    },
    "superuser": {
        "list": (200, "listed"), "retrieve": (200, "listed"), "claim": (302, "done"), "edit": (302, "done"),
        "approve": (302, "done"), "reject": (302, "done"), "request_changes": (302, "done"),
        "reassign": (302, "done"),
    },
}  # fmt: skip


def inbox_call(client, action, checkpoint):
    """Do ``action`` through the inbox; return (status, effect) as in INBOX_MATRIX."""
    page = f"{INBOX}/{checkpoint.pk}/"
    if action in ("list", "retrieve"):
        response = client.get(f"{INBOX}/" if action == "list" else page)
        body = response.content.decode()
        if action == "list" and response.status_code == 200:
            shown = checkpoint.pk in [row["checkpoint"].pk for row in response.context["rows"]]
            assert (str(checkpoint.pk) in body) is shown
        else:
            shown = response.status_code == 200
        assert "secret contents" not in body or shown
        return response.status_code, "listed" if shown else "hidden"
    before = state()
    data = review_page_posts(checkpoint)[action]
    response = client.post(page, data)
    return response.status_code, "refused" if state() == before else "done"


@pytest.mark.parametrize(
    ("role", "action"), [(role, action) for role, actions in INBOX_MATRIX.items() for action in actions]
)
def test_inbox_permission_matrix(people, client, role, action):
    user = actor(role, people)  # nobody is staff: the inbox does not ask for it
    if user is not None:
        assert not user.is_staff or user.is_superuser
        client.force_login(user)
    starter = people.carol if role == "the run's starter" else people.alice
    run = start("email-approval", EMAIL, user=starter)
    checkpoint = run.checkpoints.get()
    assert inbox_call(client, action, checkpoint) == INBOX_MATRIX[role][action]
