"""The REST API: every endpoint, filter and status code."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db

API = "/api/stepkit"
EMAIL = {"message": "Hello", "customer": "Ada", "to": "ada@example.com"}


@pytest.fixture(autouse=True)
def _responses_match_the_schema(schema_checked_responses):
    """Every response of these tests is checked against the OpenAPI schema (tests/conftest.py)."""


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def paused(people, n=1, **input):
    runs = [start("email-approval", {**EMAIL, **input}, user=people.alice) for _ in range(n)]
    return runs[0] if n == 1 else runs


def url(checkpoint, action=""):
    return f"{API}/checkpoints/{checkpoint.pk}/" + (f"{action}/" if action else "")


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["checkpoints/", "runs/", "events/", "pipelines/"])
def test_anonymous_requests_get_401(path):
    response = APIClient().get(f"{API}/{path}")
    assert response.status_code == 401


def test_token_authentication(people):
    paused(people)
    token = Token.objects.create(user=people.bob)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(f"{API}/checkpoints/").json()["count"] == 1


# -- the queue -----------------------------------------------------------------------------


def test_list_shows_the_queue_oldest_first_with_counts(people):
    runs = paused(people, 3)
    data = client_for(people.bob).get(f"{API}/checkpoints/").json()
    assert data["count"] == 3
    assert [c["run"] for c in data["results"]] == [str(r.pk) for r in runs]
    first = data["results"][0]
    assert first["pipeline"] == "email-approval" and first["step"] == "generate"
    assert first["assigned_groups"] == ["editors"]
    assert (first["approvals_count"], first["approvals_required"]) == (0, 1)


def test_the_assignments_are_read_only_for_a_page_that_may_have_some(people, registered_pipelines):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    registered_pipelines(stepkit("open").step("s", lambda c: {"n": 1}, review=Review()))
    start("open", {}, user=people.alice)
    start("open", {}, user=people.alice)
    client = client_for(people.bob)

    def listed():
        with CaptureQueriesContext(connection) as queries:
            data = client.get(f"{API}/checkpoints/").json()
        assignments = [q for q in queries.captured_queries if "_assigned_" in q["sql"].split(" FROM ")[-1][:80]]
        return data, len(assignments)

    data, lookups = listed()
    assert data["count"] == 2 and lookups == 0  # nobody assigned on this page: no assignment queries
    assert all(c["assigned_users"] == [] and c["assigned_groups"] == [] for c in data["results"])
    cp = Checkpoint.objects.earliest("created_at")
    cp.assigned_users.add(people.bob)  # through the ORM: the checkpoint may now be assigned
    paused(people)  # assigned to the editors
    data, lookups = listed()
    assert lookups == 2
    shown = {c["id"]: (c["assigned_users"], c["assigned_groups"]) for c in data["results"]}
    assert shown[str(cp.pk)] == ([{"id": people.bob.pk, "username": "bob"}], [])
    assert sorted(map(str, shown.values())) == sorted(
        map(str, [([{"id": people.bob.pk, "username": "bob"}], []), ([], []), ([], ["editors"])])
    )


def test_list_only_shows_what_the_user_may_review(people, registered_pipelines):
    registered_pipelines(
        stepkit("managers-only").step("s", lambda c: {"secret": 1}, review=Review(assign_to_group="managers"))
    )
    paused(people)
    start("managers-only", {}, user=people.alice)

    def pipelines(user):
        return sorted(c["pipeline"] for c in client_for(user).get(f"{API}/checkpoints/").json()["results"])

    assert pipelines(people.bob) == ["email-approval"]
    assert pipelines(people.dave) == ["managers-only"]
    assert pipelines(people.eve) == []  # no review permission
    assert pipelines(people.alice) == ["email-approval", "managers-only"]  # she started both runs
    assert pipelines(people.root) == ["email-approval", "managers-only"]
    hidden = Checkpoint.objects.get(pipeline_name="managers-only")
    assert client_for(people.bob).get(url(hidden)).status_code == 404


def test_filters(people, registered_pipelines):
    registered_pipelines(
        stepkit("deadline").step(
            "s", lambda c: {}, review=Review(timeout=timedelta(hours=1), assign_to_group="editors")
        )
    )
    a, b, c = paused(people, 3)
    late = start("deadline", {}, user=people.alice)
    Checkpoint.objects.filter(run=late).update(expires_at=timezone.now() - timedelta(minutes=5))
    cp_a, cp_b = a.checkpoints.get(), b.checkpoints.get()
    bob = client_for(people.bob)
    bob.post(url(cp_a, "claim"))
    client_for(people.carol).post(url(cp_b, "reject"))

    def ids(query):
        response = bob.get(f"{API}/checkpoints/?{query}")
        assert response.status_code == 200, response.json()
        return {item["run"] for item in response.json()["results"]}

    assert ids("status=pending") == {str(a.pk), str(c.pk), str(late.pk)}
    assert ids("status=rejected") == {str(b.pk)}
    assert ids("pipeline=deadline") == {str(late.pk)}
    assert ids("step=generate&status=pending") == {str(a.pk), str(c.pk)}
    assert ids("claimed_by=me") == {str(a.pk)}
    assert ids(f"claimed_by={people.bob.pk}") == {str(a.pk)}
    assert ids("unclaimed=true") == {str(c.pk), str(late.pk)}
    assert ids("unclaimed=False") == {str(a.pk), str(b.pk)}
    assert ids("overdue=true") == {str(late.pk)}
    assert ids("overdue=0") == {str(a.pk), str(b.pk), str(c.pk)}
    assert ids("assigned_to=me") == {str(a.pk), str(b.pk), str(c.pk), str(late.pk)}
    assert ids(f"assigned_to={people.dave.pk}") == set()
    future = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_after={future}") == set()
    assert len(ids(f"created_before={future}")) == 4


def test_bad_filter_values_are_400_with_field_errors(people):
    bob = client_for(people.bob)
    response = bob.get(f"{API}/checkpoints/?status=lost")
    assert response.status_code == 400 and "status" in response.json()
    response = bob.get(f"{API}/checkpoints/?assigned_to=someone")
    assert response.status_code == 400 and response.json() == {"assigned_to": ['Use "me" or a numeric user id.']}
    response = bob.get(f"{API}/checkpoints/?created_after=yesterday")
    assert response.status_code == 400 and "created_after" in response.json()
    response = bob.get(f"{API}/checkpoints/?unclaimed=banana")
    assert response.status_code == 400 and response.json() == {"unclaimed": ['Use "true" or "false".']}
    for page_size in ("0", "201", "null", "-1"):
        response = bob.get(f"{API}/checkpoints/?page_size={page_size}")
        assert response.status_code == 400 and response.json() == {"page_size": ["Use a whole number from 1 to 200."]}
    assert bob.get(f"{API}/checkpoints/?page_size=200").status_code == 200
    response = bob.get(f"{API}/checkpoints/?ordering=-created_at,secret")
    assert response.status_code == 400 and "Unknown field(s): secret." in response.json()["ordering"][0]
    assert bob.get(f"{API}/checkpoints/?ordering=-expires_at,created_at").status_code == 200


def test_ordering_and_pagination(people):
    runs = paused(people, 5)
    bob = client_for(people.bob)
    page = bob.get(f"{API}/checkpoints/?page_size=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    newest_first = bob.get(f"{API}/checkpoints/?ordering=-created_at").json()["results"]
    assert [c["run"] for c in newest_first] == [str(r.pk) for r in reversed(runs)]
    assert bob.get(f"{API}/checkpoints/?page=9").status_code == 404


def test_retrieve_has_context_editable_schema_remaining_steps_and_etag(people):
    cp = paused(people).checkpoints.get()
    response = client_for(people.bob).get(url(cp))
    assert response.status_code == 200
    data = response.json()
    assert response["ETag"] == f'"{cp.pk}-1"'
    assert data["context"]["body"] == "Hello Ada, thanks for writing."
    assert data["editable"] == ["subject", "body"]
    assert data["schema"]["required"] == ["subject", "body"]
    assert data["remaining_steps"] == ["send"]
    assert data["approvals"] == [] and data["version"] == 1


def test_not_a_uuid_is_404(people):
    assert client_for(people.bob).get(f"{API}/checkpoints/not-a-uuid/").status_code == 404


# -- decisions -----------------------------------------------------------------------------


def test_claim_edit_approve_through_the_api(people):
    run = paused(people)
    cp = run.checkpoints.get()
    bob = client_for(people.bob)
    claimed = bob.post(url(cp, "claim"))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"]["username"] == "bob"
    edited = bob.post(url(cp, "edit"), {"override_data": {"body": "Edited"}}, format="json")
    assert edited.status_code == 200
    assert edited.json()["effective_context"]["body"] == "Edited"
    approved = bob.post(url(cp, "approve"), {"comment": "ok"}, format="json", HTTP_IF_MATCH=edited["ETag"])
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert SideEffect.objects.get().payload["body"] == "Edited"


def test_release_and_reassign(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.grant_reassign("bob"))
    bob.post(url(cp, "claim"))
    assert bob.post(url(cp, "release")).json()["claimed_by"] is None
    response = bob.post(url(cp, "reassign"), {"to_groups": ["managers"]}, format="json")
    assert response.status_code == 200 and response.json()["assigned_groups"] == ["managers"]
    assert bob.post(url(cp, "reassign"), {}, format="json").status_code == 404  # no longer in bob's queue
    response = client_for(people.grant_reassign("dave")).post(
        url(cp, "reassign"), {"to_groups": ["nobody"]}, format="json"
    )
    assert response.status_code == 400 and response.json() == {"to_groups": ["There is no group 'nobody'."]}


def test_reject_through_the_api(people):
    run = paused(people)
    response = client_for(people.carol).post(url(run.checkpoints.get(), "reject"), {"comment": "no"}, format="json")
    assert response.status_code == 200 and response.json()["comment"] == "no"
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED


def test_invalid_override_is_400_with_field_errors_and_changes_nothing(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count())
    response = bob.post(url(cp, "approve"), {"override_data": {"to": "x@evil.test", "body": ""}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["override_data"]) == ["to"]
    response = bob.post(url(cp, "edit"), {"override_data": {"body": ""}}, format="json")
    assert response.status_code == 400
    assert "body" in response.json()["override_data"]
    response = bob.post(url(cp, "edit"), {"override_data": ["not", "an", "object"]}, format="json")
    assert response.status_code == 400 and "override_data" in response.json()
    response = bob.post(url(cp, "edit"), {}, format="json")
    assert response.status_code == 400 and response.json()["override_data"] == ["This field is required."]
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count()) == before


def test_forbidden_decisions_are_403_or_404_when_not_visible(people):
    cp = paused(people).checkpoints.get()
    # eve has no review permission: the checkpoint is not in her queue, and its existence is not leaked
    assert client_for(people.eve).post(url(cp, "approve")).status_code == 404
    # alice started the run: she sees it, but may not decide it
    response = client_for(people.alice).post(url(cp, "approve"))
    assert response.status_code == 403 and "permission" in response.json()["detail"]
    # bob starts a run and tries to approve it himself
    own = start("email-approval", EMAIL, user=people.bob).checkpoints.get()
    response = client_for(people.bob).post(url(own, "approve"))
    assert response.status_code == 403 and "Four-eyes" in response.json()["detail"]
    assert Checkpoint.objects.get(pk=own.pk).status == CheckpointStatus.PENDING


def test_conflicts_are_409(people):
    cp = paused(people).checkpoints.get()
    client_for(people.bob).post(url(cp, "claim"))
    response = client_for(people.carol).post(url(cp, "approve"))
    assert response.status_code == 409 and "claimed by bob" in response.json()["detail"]
    client_for(people.bob).post(url(cp, "reject"))
    assert client_for(people.carol).post(url(cp, "claim")).status_code == 409
    response = client_for(people.bob).post(url(cp, "approve"), {"expected_version": 1}, format="json")
    assert response.status_code == 409


def test_stale_expected_version_in_the_body_is_409(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    bob.post(url(cp, "edit"), {"override_data": {"subject": "S"}}, format="json")
    response = bob.post(url(cp, "approve"), {"expected_version": 1}, format="json")
    assert response.status_code == 409 and "version 1" in response.json()["detail"]


def test_if_match_mismatch_is_412_and_changes_nothing(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    seen = bob.get(url(cp))["ETag"]
    client_for(people.carol).post(url(cp, "edit"), {"override_data": {"subject": "changed"}}, format="json")
    response = bob.post(url(cp, "approve"), HTTP_IF_MATCH=seen)
    assert response.status_code == 412
    assert Checkpoint.objects.get(pk=cp.pk).status == CheckpointStatus.PENDING
    assert bob.post(url(cp, "claim"), HTTP_IF_MATCH="*").status_code == 200


def test_pipeline_changed_is_409(people, registered_pipelines):
    registered_pipelines(stepkit("v").step("s", lambda c: {}, review=Review()))
    run = start("v", {}, user=people.alice)
    registered_pipelines(stepkit("v", version=2).step("s", lambda c: {}, review=Review()), replace=True)
    response = client_for(people.bob).post(url(run.checkpoints.get(), "approve"))
    assert response.status_code == 409 and "version 1 to 2" in response.json()["detail"]


def test_claim_next_hands_out_the_oldest_unclaimed_then_204(people):
    runs = paused(people, 2)
    bob = client_for(people.bob)
    first = bob.post(f"{API}/checkpoints/claim-next/")
    assert first.status_code == 200 and first.json()["run"] == str(runs[0].pk)
    assert first.json()["claimed_by"]["username"] == "bob"
    second = client_for(people.carol).post(f"{API}/checkpoints/claim-next/")
    assert second.json()["run"] == str(runs[1].pk)
    assert bob.post(f"{API}/checkpoints/claim-next/").status_code == 204
    assert client_for(people.dave).post(f"{API}/checkpoints/claim-next/").status_code == 204


def test_claim_next_respects_filters(people, registered_pipelines):
    registered_pipelines(stepkit("other").step("s", lambda c: {}, review=Review()))
    paused(people)
    other = start("other", {}, user=people.alice)
    response = client_for(people.bob).post(f"{API}/checkpoints/claim-next/?pipeline=other")
    assert response.json()["run"] == str(other.pk)


def test_claim_next_with_a_distinct_filter_and_a_permission_the_reviewer_lacks(people, registered_pipelines):
    registered_pipelines(
        stepkit("managed").step("s", lambda c: {}, review=Review(permission="stepkit_django.manage_pipelinerun"))
    )
    start("managed", {}, user=people.alice)  # older, but bob lacks its permission: never handed to him
    mine = start("email-approval", EMAIL, user=people.alice).checkpoints.get()
    review.reassign(mine, people.root, to_users=["bob"])
    group_item = paused(people).checkpoints.get()  # assigned to bob's group, the editors
    bob = client_for(people.bob)
    claimed = [bob.post(f"{API}/checkpoints/claim-next/?assigned_to=me") for _ in range(3)]  # joins: DISTINCT
    assert [r.status_code for r in claimed] == [200, 200, 204]
    assert [r.json()["id"] for r in claimed[:2]] == [str(mine.pk), str(group_item.pk)]
    assert bob.post(f"{API}/checkpoints/claim-next/?pipeline=managed").status_code == 204


# -- runs ------------------------------------------------------------------------------------


def test_start_a_run_201_and_replay_200(people):
    people.bob.user_permissions.add(people.review_permission.__class__.objects.get(codename="add_pipelinerun"))
    bob = client_for(type(people.bob).objects.get(pk=people.bob.pk))
    body = {"pipeline": "payment-approval", "input": {"amount": 10}, "idempotency_key": "pay-1"}
    created = bob.post(f"{API}/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "completed" and created.json()["context"]["paid"] is True
    replay = bob.post(f"{API}/runs/", body, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == created.json()["id"]
    assert PipelineRun.objects.count() == 1


def test_start_requires_permission_and_a_registered_pipeline(people):
    assert (
        client_for(people.bob).post(f"{API}/runs/", {"pipeline": "payment-approval"}, format="json").status_code == 403
    )
    root = client_for(people.root)
    response = root.post(f"{API}/runs/", {"pipeline": "nope"}, format="json")
    assert response.status_code == 400 and "No pipeline named 'nope'" in response.json()["pipeline"][0]
    response = root.post(f"{API}/runs/", {"pipeline": "payment-approval", "input": [1]}, format="json")
    assert response.status_code == 400 and "input" in response.json()


def test_runs_list_retrieve_cancel_and_events(people):
    run = paused(people)
    alice = client_for(people.alice)
    listed = alice.get(f"{API}/runs/").json()
    assert [r["id"] for r in listed["results"]] == [str(run.pk)]
    assert alice.get(f"{API}/runs/{run.pk}/").json()["status"] == "paused"
    assert client_for(people.dave).get(f"{API}/runs/{run.pk}/").status_code == 404
    assert client_for(people.bob).post(f"{API}/runs/{run.pk}/cancel/").status_code == 403
    cancelled = alice.post(f"{API}/runs/{run.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert alice.post(f"{API}/runs/{run.pk}/cancel/").status_code == 409
    events = alice.get(f"{API}/runs/{run.pk}/events/").json()
    assert [e["action"] for e in events["results"]] == ["run_started", "step_completed", "paused", "run_cancelled"]


def test_retry_a_failed_run(people, registered_pipelines):
    attempts = []

    def flaky(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("temporary")
        return {"ok": True}

    registered_pipelines(stepkit("flaky-api").step("s", flaky))
    run = start("flaky-api", {}, user=people.alice)
    alice = client_for(people.alice)
    # the message may quote personal data: in full only for run managers; the starter sees the type
    assert alice.get(f"{API}/runs/{run.pk}/").json()["error"] == "RuntimeError"
    assert client_for(people.root).get(f"{API}/runs/{run.pk}/").json()["error"] == "RuntimeError: temporary"
    retried = alice.post(f"{API}/runs/{run.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == "completed"
    assert alice.post(f"{API}/runs/{run.pk}/retry/").status_code == 409


# -- events and pipelines --------------------------------------------------------------------


def test_events_are_filterable(people):
    run = paused(people)
    cp = run.checkpoints.get()
    client_for(people.bob).post(url(cp, "approve"))
    bob = client_for(people.bob)

    def actions(query):
        return [e["action"] for e in bob.get(f"{API}/events/?{query}").json()["results"]]

    assert actions(f"run={run.pk}") == [e.action for e in run.events.all()]
    assert actions(f"checkpoint={cp.pk}") == ["paused", "approved", "resumed"]
    assert actions("action=approved") == ["approved"]
    assert actions(f"actor={people.bob.pk}") == ["approved", "resumed"]
    assert actions("pipeline=payment-approval") == []
    later = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert actions(f"after={later}") == []
    assert client_for(people.dave).get(f"{API}/events/").json()["results"] == []


def test_pipelines_list_and_detail(people):
    bob = client_for(people.bob)
    names = [p["name"] for p in bob.get(f"{API}/pipelines/").json()]
    assert {"email-approval", "payment-approval"} <= set(names)
    detail = bob.get(f"{API}/pipelines/email-approval/").json()
    assert detail["steps"] == ["generate", "send"]
    generate = detail["all_steps"][0]
    assert generate["review"]["editable"] == ["subject", "body"]
    assert generate["review"]["permission"] == "stepkit_django.review_checkpoint"
    assert bob.get(f"{API}/pipelines/nope/").status_code == 404


# -- the schema ------------------------------------------------------------------------------


def test_schema_endpoint_serves_openapi_3(people):
    response = client_for(people.bob).get(f"{API}/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert f"{API}/checkpoints/{{id}}/approve/" in schema["paths"]
    approve = schema["paths"][f"{API}/checkpoints/{{id}}/approve/"]["post"]
    assert {"200", "400", "403", "404", "409", "412"} <= set(approve["responses"])


def test_schema_validates_with_fail_on_warn(tmp_path):
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"), stderr=out)
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")


# -- hostile input -----------------------------------------------------------------------------


def unchanged(fn):
    before = (list(Checkpoint.objects.values()), AuditEvent.objects.count(), PipelineRun.objects.count())
    response = fn()
    assert (list(Checkpoint.objects.values()), AuditEvent.objects.count(), PipelineRun.objects.count()) == before
    return response


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"override_data": {"body": "a\\u0000b"}}', "NUL characters"),
        ('{"override_data": {"bo\\u0000dy": "x"}}', "NUL characters"),
        ('{"override_data": {"body": NaN}}', "Out of range float values"),
        ('{"override_data": {"body": Infinity}}', "Out of range float values"),
        ("[" * 10_000 + "]" * 10_000, "nested more than 64 levels"),
        ('{"override_data": ' + '{"a":' * 100 + "1" + "}" * 100 + "}", "nested more than 64 levels"),
        ('{"override_data": {"body": "x"', "JSON parse error"),
    ],
)
def test_hostile_bodies_are_400_and_change_nothing(people, body, message):
    cp = paused(people).checkpoints.get()
    client = client_for(people.bob)
    for action in ("edit", "approve"):
        response = unchanged(
            lambda action=action: client.generic("POST", url(cp, action), body, content_type="application/json")
        )
        assert response.status_code == 400, response.content
        assert message in response.json()["detail"]


def test_nul_in_a_comment_or_a_query_parameter_is_400(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    response = unchanged(lambda: bob.post(url(cp, "reject"), {"comment": "no\x00pe"}, format="json"))
    assert response.status_code == 400 and "NUL characters" in response.json()["detail"]
    response = bob.get(f"{API}/checkpoints/?pipeline=a%00b")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]


def test_unicode_in_every_text_field_round_trips(people):
    run = paused(people, customer="Zoë 😀 Łódź")
    cp = run.checkpoints.get()
    bob = client_for(people.bob)
    text = "Ünïcödé ✓ 中文 עברית 😀"
    response = bob.post(
        url(cp, "approve"), {"override_data": {"subject": text, "body": text}, "comment": text}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["comment"] == text
    assert SideEffect.objects.get().payload == {"subject": text, "body": text}


def test_a_body_over_the_size_limit_is_refused(people, settings):
    settings.STEPKIT = {"MAX_OVERRIDE_BYTES": 10_000}
    cp = paused(people).checkpoints.get()
    response = unchanged(
        lambda: client_for(people.bob).post(url(cp, "edit"), {"override_data": {"body": "x" * 20_000}}, format="json")
    )
    assert response.status_code == 400 and "the limit is 10000 bytes" in str(response.json())


def test_the_api_answers_503_with_a_retry_hint_when_the_database_is_unreachable(people, monkeypatch):
    from django.db import OperationalError

    from stepkit_django.api import views

    paused(people)

    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(views.CheckpointViewSet, "get_queryset", unreachable)
    response = client_for(people.bob).get(f"{API}/checkpoints/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}


def test_a_checkpoint_signed_before_a_key_rotation_is_approved_with_the_stored_token(people, settings):
    old = "the-old-secret-key-the-old-secret-key-123"
    settings.SECRET_KEY = old
    cp = paused(people).checkpoints.get()
    settings.SECRET_KEY = "the-new-secret-key-the-new-secret-key-456"
    settings.SECRET_KEY_FALLBACKS = [old]
    response = client_for(people.bob).post(
        url(cp, "approve"), {"override_data": {"body": "after rotation"}}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert SideEffect.objects.get().payload["body"] == "after rotation"


def test_a_client_supplied_token_is_ignored_the_stored_one_is_used(people):
    from stepkit_django import stepkit

    cp = paused(people).checkpoints.get()
    # a token for another pipeline, forged context and all, sent along with the approval
    forged = {}
    stepkit("email-approval").step("generate", lambda c: {"to": "attacker@example.com"}).step("send").run(
        {}, on_step_complete=lambda e: forged.setdefault("token", e.checkpoint)
    )
    response = client_for(people.bob).post(
        url(cp, "approve"), {"token": forged["token"], "checkpoint": forged["token"]}, format="json"
    )
    assert response.status_code == 200
    assert SideEffect.objects.get().key == "ada@example.com"  # the context of the stored token


# -- decisions: the checkpoint is read once, and the error answers keep their order --------


def test_a_decision_reads_the_checkpoint_twice_the_queue_lookup_and_the_service(people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cp = paused(people).checkpoints.get()
    with CaptureQueriesContext(connection) as queries:
        assert client_for(people.bob).post(url(cp, "claim")).status_code == 200
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    # get_object() in the caller's queue (404 outside it, the ETag's version), then the service's own read
    assert sum('FROM "stepkit_django_checkpoint"' in sql for sql in reads) == 2


def test_decisions_take_the_checkpoint_id_as_well_as_the_instance(people):
    cp = paused(people).checkpoints.get()
    review.claim(str(cp.pk), people.bob)
    decided = review.approve(cp.pk, people.bob, comment="by id")
    assert decided.status == CheckpointStatus.APPROVED and decided.comment == "by id"


def test_unknown_checkpoint_is_404_for_every_decision(people):
    missing = "00000000-0000-0000-0000-000000000000"
    for action in ("claim", "release", "edit", "approve", "reject", "reassign"):
        response = client_for(people.root).post(f"{API}/checkpoints/{missing}/{action}/", {}, format="json")
        assert response.status_code == 404, action


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("stale", None, 412),  # the ETag the client saw is no longer current
        ("stale", "current", 412),  # If-Match is checked first, even when the body's version is current
        ("current", "stale", 409),  # If-Match passes; the body's version does not
        ("other", None, 412),  # an ETag of another checkpoint
        ("current", None, 200),
    ],
)
def test_if_match_and_expected_version_together(people, header, body, expected):
    cp = paused(people).checkpoints.get()
    other = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    stale = bob.get(url(cp))["ETag"]
    bob.post(url(cp, "edit"), {"override_data": {"subject": "S"}}, format="json")
    tags = {"stale": stale, "current": bob.get(url(cp))["ETag"], "other": bob.get(url(other))["ETag"]}
    versions = {"stale": 1, "current": 2}
    payload = {"expected_version": versions[body]} if body else {}
    response = bob.post(url(cp, "approve"), payload, format="json", HTTP_IF_MATCH=tags[header])
    assert response.status_code == expected, response.json()
    if expected == 412:
        assert response.json()["detail"] == f"The checkpoint changed: its ETag is now {tags['current']}."
    status = Checkpoint.objects.get(pk=cp.pk).status
    assert status == (CheckpointStatus.APPROVED if expected == 200 else CheckpointStatus.PENDING)


def test_a_decided_checkpoint_with_a_stale_etag_is_412_and_outside_the_queue_404(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    seen = bob.get(url(cp))["ETag"]
    bob.post(url(cp, "approve"))
    assert bob.post(url(cp, "reject"), HTTP_IF_MATCH=seen).status_code == 412
    assert bob.post(url(cp, "reject")).status_code == 409
    # eve may not review: a decided checkpoint, a bad body or a stale ETag all answer 404 to her
    eve = client_for(people.eve)
    assert eve.post(url(cp, "reject"), HTTP_IF_MATCH=seen).status_code == 404
    assert eve.post(url(cp, "edit"), {}, format="json").status_code == 404


def test_malformed_if_match_and_page_size_are_refused_not_crashing(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    for tag in (f'"{cp.pk}-\u00b2"', f'"{cp.pk}-"', "garbage", f'"{cp.pk}-1'):
        assert bob.post(url(cp, "claim"), HTTP_IF_MATCH=tag).status_code == 412, tag
    assert bob.get(f"{API}/checkpoints/?page_size=\u00b2").status_code == 400


def test_if_match_may_list_several_etags_and_weak_ones(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    bob.post(url(cp, "edit"), {"override_data": {"subject": "S"}}, format="json")  # now version 2
    old_and_current = f'"{cp.pk}-1", W/"{cp.pk}-2"'
    assert bob.post(url(cp, "claim"), HTTP_IF_MATCH=old_and_current).status_code == 200
    assert bob.post(url(cp, "release"), HTTP_IF_MATCH=f'"{cp.pk}-1", "{cp.pk}-2"').status_code == 412  # now 3


def test_a_stale_etag_is_412_before_a_bad_body_or_a_refusal(people):
    cp = paused(people).checkpoints.get()
    bob = client_for(people.bob)
    seen = bob.get(url(cp))["ETag"]
    bob.post(url(cp, "edit"), {"override_data": {"subject": "S"}}, format="json")
    assert bob.post(url(cp, "edit"), {}, format="json", HTTP_IF_MATCH=seen).status_code == 412  # not 400
    # alice started the run: she sees it and may not decide it, but her ETag is stale first
    assert client_for(people.alice).post(url(cp, "approve"), HTTP_IF_MATCH=seen).status_code == 412
    assert client_for(people.alice).post(url(cp, "approve")).status_code == 403
