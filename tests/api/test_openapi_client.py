"""A client generated from ``GET schema/`` by openapi-python-client drives the demo story on a live server.

The schema is the contract: if it says a field is required and not null, or leaves an answer's status
code or body out, the generated client raises or parses nothing. The client is generated once per
module into a temporary folder (no network: the schema is a file) and imported; every call goes over
HTTP to pytest-django's ``live_server``, authenticated with DRF tokens. ``raise_on_unexpected_status``
makes any status code the schema does not document fail the test.
"""

import importlib
import json
import subprocess
import sys
import types

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token

from stepkit_django import start
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/stepkit"
PACKAGE = "stepkit_story_client"
EMAIL = {"message": "My invoice shows the wrong amount.", "customer": "Ada", "to": "ada@example.com"}


class Generated:
    """A generated package whose modules are imported on first use: ``api.api.runs.runs_create``."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attribute):
        module = importlib.import_module(self._name)
        try:
            value = getattr(module, attribute)
        except AttributeError:
            value = importlib.import_module(f"{self._name}.{attribute}")
        package = isinstance(value, types.ModuleType) and hasattr(value, "__path__")
        return Generated(value.__name__) if package else value


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The generated client package: ``api.<module>`` imports ``stepkit_story_client.<module>``."""
    pytest.importorskip("openapi_python_client", reason="openapi-python-client is in the test dependency group")
    folder = tmp_path_factory.mktemp("openapi_client")
    response = Client().get(f"{API}/schema/")  # JSON by default
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.1")
    (folder / "schema.json").write_text(json.dumps(schema))
    # No formatter run on the output (post_hooks): only the generator is under test.
    (folder / "config.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", "schema.json"]
    command += ["--output-path", str(folder / PACKAGE), "--meta", "none", "--config", "config.yaml"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The generator reports what it could not turn into code as warnings, and still succeeds.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield Generated(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def clients(people, live_server, api):
    """Token-authenticated clients of the live server for the cast: bob reviews, alice starts runs."""
    people.alice.user_permissions.add(
        Permission.objects.get(content_type__app_label="stepkit_django", codename="add_pipelinerun")
    )

    def client(user):
        token = Token.objects.create(user=user).key
        return api.client.AuthenticatedClient(
            base_url=live_server.url, token=token, prefix="Token", raise_on_unexpected_status=True
        )

    made = {"bob": client(people.bob), "alice": client(people.alice)}
    yield made
    for each in made.values():  # no keep-alive connection left to the server once the test is over
        each.get_httpx_client().close()


def test_the_demo_story_through_a_generated_client(people, clients, api):
    bob, alice = clients["bob"], clients["alice"]
    models = api.models
    checkpoints = api.api.checkpoints
    runs = api.api.runs
    run = start("email-approval", EMAIL, user=people.alice)

    # The queue, then one checkpoint with its ETag.
    queue = api.api.checkpoints.checkpoints_list.sync(client=bob)
    assert isinstance(queue, models.PaginatedCheckpointList)
    assert (queue.count, queue.next_, queue.previous) == (1, None, None)
    listed = queue.results[0]
    assert (listed.pipeline, listed.step, listed.claimed_by) == ("email-approval", "generate", None)
    assert listed.status == models.CheckpointStatusEnum.PENDING
    shown = checkpoints.checkpoints_retrieve.sync_detailed(listed.id, client=bob)
    detail, etag = shown.parsed, shown.headers["ETag"]
    assert isinstance(detail, models.CheckpointDetail)
    assert etag == f'"{detail.id}-{detail.version}"'
    assert detail.run == run.pk and detail.editable == ["subject", "body"]
    assert detail.schema["required"] == ["subject", "body"]
    assert detail.context["customer"] == "Ada" and detail.approvals == [] and detail.claimed_at is None

    # Field errors come back typed, nested under the field.
    refused = checkpoints.checkpoints_edit_create.sync_detailed(
        detail.id, client=bob, body=models.Edit(override_data=models.EditOverrideData.from_dict({"subject": ""}))
    )
    assert refused.status_code == 400 and isinstance(refused.parsed, models.ValidationError)
    assert refused.parsed["override_data"]["subject"]

    # Approve what was seen (If-Match), with an edit.
    edits = models.ApproveOverrideData.from_dict({"subject": "Re: your invoice"})
    approved = checkpoints.checkpoints_approve_create.sync_detailed(
        detail.id, client=bob, body=models.Approve(override_data=edits, comment="Fine."), if_match=etag
    )
    assert approved.status_code == 200, approved.content
    decided = approved.parsed
    assert isinstance(decided, models.CheckpointDetail)
    assert decided.status == models.CheckpointStatusEnum.APPROVED and decided.decided_by.username == "bob"
    assert decided.approvals[0].user.username == "bob" and decided.approvals[0].created_at is not None
    assert approved.headers["ETag"] == f'"{decided.id}-{decided.version}"' != etag
    assert SideEffect.objects.get(kind="email").payload["subject"] == "Re: your invoice"

    # Deciding again: with the ETag seen before, 412; with the current one, 409. Both typed errors.
    stale = checkpoints.checkpoints_approve_create.sync_detailed(
        detail.id, client=bob, body=models.Approve(), if_match=etag
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, models.Error)
    assert approved.headers["ETag"] in stale.parsed.detail
    again = checkpoints.checkpoints_approve_create.sync_detailed(
        detail.id, client=bob, body=models.Approve(), if_match=approved.headers["ETag"]
    )
    assert again.status_code == 409 and isinstance(again.parsed, models.Error) and again.parsed.detail

    # Start a run over the API; the same idempotency key replays it, and is refused for another pipeline.
    body = models.RunCreate(
        pipeline="email-approval", input_=models.RunCreateInput.from_dict(EMAIL), idempotency_key="story-1"
    )
    created = runs.runs_create.sync_detailed(client=alice, body=body)
    assert created.status_code == 201 and isinstance(created.parsed, models.Run)
    new_run = created.parsed
    assert new_run.status == models.RunStatusEnum.PAUSED and new_run.started_by.username == "alice"
    assert new_run.input_.to_dict() == EMAIL and new_run.finished_at is None and len(new_run.checkpoints) == 1
    replayed = runs.runs_create.sync_detailed(client=alice, body=body)
    assert replayed.status_code == 200 and replayed.parsed.id == new_run.id
    other = models.RunCreate(pipeline="payment-approval", input_=models.RunCreateInput(), idempotency_key="story-1")
    conflict = runs.runs_create.sync_detailed(client=alice, body=other)
    assert conflict.status_code == 409 and isinstance(conflict.parsed, models.Error)
    assert conflict.parsed.detail == "This idempotency key was already used for another run."

    # The first run's audit trail, oldest first.
    events = runs.runs_events_list.sync(run.pk, client=alice)
    assert isinstance(events, models.PaginatedAuditEventList)
    actions = [event.action for event in events.results]
    A = models.AuditActionEnum
    assert actions[0] == A.RUN_STARTED and actions[-1] == A.RUN_COMPLETED
    assert {A.PAUSED, A.APPROVED, A.RESUMED} <= set(actions)
    approval = next(event for event in events.results if event.action == A.APPROVED)
    assert approval.actor.username == "bob" and approval.checkpoint == detail.id
    assert all(event.run == run.pk and isinstance(event.data, models.AuditEventData) for event in events.results)


def test_a_checkpoint_without_json_schema_parses(people, clients, api):
    """Most pipelines give their review no JSON Schema: ``schema`` is null in the detail and in decisions."""
    bob = clients["bob"]
    checkpoints = api.api.checkpoints
    start("payment-approval", {"payee": "Globex", "amount": 12500}, user=people.alice)
    listed = checkpoints.checkpoints_list.sync(client=bob, pipeline="payment-approval").results[0]
    detail = checkpoints.checkpoints_retrieve.sync(listed.id, client=bob)
    assert isinstance(detail, api.models.CheckpointDetail)
    assert detail.schema is None and detail.editable is None and detail.override_data.to_dict() == {}
    claimed = checkpoints.checkpoints_claim_create.sync_detailed(detail.id, client=bob, body=api.models.Version())
    assert claimed.status_code == 200 and claimed.parsed.schema is None
    assert claimed.parsed.claimed_by.username == "bob" and claimed.parsed.claimed_at is not None
    approved = checkpoints.checkpoints_approve_create.sync(
        detail.id, client=bob, body=api.models.Approve(), if_match=claimed.headers["ETag"]
    )
    assert approved.schema is None and approved.status == api.models.CheckpointStatusEnum.APPROVED
    pipelines = api.api.pipelines.pipelines_retrieve.sync("payment-approval", client=bob)
    assert [step.name for step in pipelines.all_steps] == ["check", "pay"]
    assert pipelines.all_steps[1].review is None
