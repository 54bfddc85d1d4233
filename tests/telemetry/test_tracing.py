"""The spans, recorded by the OpenTelemetry SDK's in-memory exporter: one per run advance, per call of a
step function, per decision; the trace context sent with a run's id; never a context value."""

import json
import subprocess
import sys
from datetime import timedelta
from importlib.util import find_spec

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from opentelemetry.trace import SpanKind, StatusCode

from stepkit_django import Review, review, start, stepkit
from stepkit_django.execution import jobs
from stepkit_django.execution.executors import TasksExecutor, accepts_trace_context
from stepkit_django.models import Checkpoint
from stepkit_django.status import RunStatus
from stepkit_django.telemetry import tracing
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

TASKS_PACKAGE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
IMMEDIATE = f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"
DUMMY = f"{TASKS_PACKAGE}.backends.dummy.DummyBackend"
if find_spec("django.tasks") is not None:
    from django.tasks import task
else:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]

SECRET = "s3cr3t-ctx-value"


def flaky():
    calls = []

    def step(context):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError(f"first attempt fails near {SECRET}")
        return {"fetched": SECRET + "-fetched"}

    return step


@pytest.fixture
def pipelines(registered_pipelines):
    registered_pipelines(
        stepkit("traced")
        .step("fetch", flaky(), retries=1)
        .step("fan", lambda c: {"left": SECRET}, lambda c: {"right": SECRET})
        .step("draft", lambda c: {"text": SECRET}, review=Review(editable=["text"], timeout=timedelta(hours=1)))
        .step("send", lambda c: {"sent": c["text"]})
    )


def by_name(spans, name):
    return [s for s in spans if s.name == name]


def test_an_inline_run_has_an_advance_span_with_a_span_per_step_call(otel, pipelines, people):
    with otel.tracer_provider.get_tracer("test").start_as_current_span("request") as request:
        run = start("traced", {"input": SECRET}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    spans = otel.spans()
    [advance] = by_name(spans, "stepkit.advance")
    assert advance.parent.span_id == request.get_span_context().span_id  # inline: simply a child
    assert dict(advance.attributes) == {
        "stepkit.run.id": str(run.pk),
        "stepkit.pipeline": "traced",
        "stepkit.run.status": "paused",
    }
    steps = by_name(spans, "stepkit.step")
    assert all(s.parent.span_id == advance.context.span_id for s in steps)
    described = sorted(
        (s.attributes["stepkit.step"], s.attributes["stepkit.step.attempt"], s.attributes.get("stepkit.step.item"))
        for s in steps
    )
    assert described == [("draft", 1, None), ("fan", 1, 0), ("fan", 1, 1), ("fetch", 1, None), ("fetch", 2, None)]
    assert {s.attributes["stepkit.run.id"] for s in steps} == {str(run.pk)}
    [failed] = [s for s in steps if s.status.status_code == StatusCode.ERROR]
    assert failed.attributes["stepkit.step.attempt"] == 1
    assert failed.attributes["error.type"] == "ConnectionError"


def test_a_step_function_s_own_spans_are_children_of_its_step_span(otel, registered_pipelines):
    tracer = otel.tracer_provider.get_tracer("the-step's-client")

    def call_out(context):
        with tracer.start_as_current_span("http GET"):
            return {}

    registered_pipelines(stepkit("calls-out").step("call", call_out, timeout=5))  # run in a thread of its own
    start("calls-out", {})
    [step] = otel.spans("stepkit.step")
    [client] = otel.spans("http GET")
    assert client.parent.span_id == step.context.span_id


def test_a_failed_run_s_advance_span_is_an_error(otel, registered_pipelines):
    def boom(context):
        raise ValueError(SECRET)

    registered_pipelines(stepkit("fails").step("boom", boom))
    start("fails", {})
    [advance] = otel.spans("stepkit.advance")
    assert advance.attributes["stepkit.run.status"] == "failed"
    assert advance.status.status_code == StatusCode.ERROR


def test_an_approval_is_a_decision_span_and_the_inline_resume_its_child(otel, pipelines, people):
    run = start("traced", {}, user=people.alice)
    checkpoint = run.checkpoints.get()
    otel.exporter.clear()
    review.approve(checkpoint, people.bob, override_data={"text": SECRET})
    [decision] = otel.spans("stepkit.decision")
    assert dict(decision.attributes) == {
        "stepkit.decision.action": "approve",
        "stepkit.checkpoint.id": str(checkpoint.pk),
        "stepkit.run.id": str(run.pk),
        "stepkit.pipeline": "traced",
        "stepkit.step": "draft",
        "stepkit.decision.outcome": "approved",
    }
    [advance] = otel.spans("stepkit.advance")
    assert advance.parent.span_id == decision.context.span_id
    assert advance.attributes["stepkit.run.status"] == "completed"
    assert [s.attributes["stepkit.step"] for s in otel.spans("stepkit.step")] == ["send"]


def test_rejections_requests_for_changes_and_expiries_are_decision_spans(otel, pipelines, people):
    runs = [start("traced", {}, user=people.alice) for _ in range(3)]
    first, second, third = (run.checkpoints.get() for run in runs)
    review.reject(first, people.bob, comment="no")
    review.request_changes(second, people.bob, comment="again")
    Checkpoint.objects.filter(pk=third.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    review.expire_due()
    outcomes = sorted(
        (s.attributes["stepkit.decision.action"], s.attributes["stepkit.decision.outcome"])
        for s in otel.spans("stepkit.decision")
    )
    assert outcomes == [("expire", "expired"), ("reject", "rejected"), ("request_changes", "changes_requested")]


def test_a_refused_decision_is_an_error_span_and_names_no_run(otel, pipelines, people):
    from stepkit_django.exceptions import ReviewPermissionDenied

    run = start("traced", {}, user=people.alice)
    checkpoint = run.checkpoints.get()
    with pytest.raises(ReviewPermissionDenied):
        review.approve(checkpoint, people.alice)  # alice may not review
    [decision] = otel.spans("stepkit.decision")
    assert decision.status.status_code == StatusCode.ERROR
    assert decision.attributes["error.type"] == "ReviewPermissionDenied"
    assert "stepkit.decision.outcome" not in decision.attributes


def test_the_tasks_executor_sends_the_trace_context_and_the_worker_s_span_links_to_it(otel, pipelines, people):
    tasks = {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["default"]}}
    with override_settings(STEPKIT={**settings.STEPKIT, "EXECUTOR": "tasks"}, TASKS=tasks):
        run = start("traced", {}, user=people.alice)  # no span around: nothing to link to
        [first] = otel.spans("stepkit.advance")
        assert list(first.links) == [] and first.parent is None
        review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    [decision] = otel.spans("stepkit.decision")
    resumed = otel.spans("stepkit.advance")[-1]
    assert resumed.kind == SpanKind.CONSUMER
    [link] = resumed.links
    assert (link.context.trace_id, link.context.span_id) == (decision.context.trace_id, decision.context.span_id)
    # The immediate backend runs the task in the decision's own stack: a child too (a worker's is a new trace).
    assert resumed.parent.span_id == decision.context.span_id


def test_no_span_and_no_metric_holds_a_context_value(otel, pipelines, people):
    run = start("traced", {"input": SECRET, SECRET: 1}, user=people.alice)
    review.approve(run.checkpoints.get(), people.bob, override_data={"text": SECRET + "-edited"})

    def boom(context):
        raise ValueError(f"cannot handle {context['input']}")

    from stepkit_django import register, unregister

    register(stepkit("leaks").step("boom", boom))
    try:
        start("leaks", {"input": SECRET})
    finally:
        unregister("leaks")
    spans = otel.spans()
    assert len(spans) > 10
    recorded = [
        json.loads(span.to_json())  # every attribute, event, link, status and resource of the span
        for span in spans
    ]
    points = [dict(p.attributes) for name, ps in otel.metrics().items() for p in ps]
    assert points
    dumped = json.dumps([recorded, points])
    assert SECRET not in dumped


def test_without_opentelemetry_installed_the_package_works_and_records_nothing():
    script = (
        f"IMMEDIATE = {IMMEDIATE!r}\n"
        + """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
call_command("migrate", verbosity=0)
from stepkit_django import Review, register, review, start, stepkit, telemetry
assert telemetry.AVAILABLE is False
register(stepkit("plain").step("a", lambda c: {"a": 1}))
assert start("plain", {}).status == "completed"
register(stepkit("reviewed").step("draft", lambda c: {}, review=Review()).step("send", lambda c: {}))
root = User.objects.create_superuser("root", password="pw")
run = start("reviewed", {})
review.approve(run.checkpoints.get(), root)  # a decision, and the inline resume
run.refresh_from_db()
assert run.status == "completed", run.status
tasks = {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["default"]}}
with override_settings(STEPKIT={"EXECUTOR": "tasks"}, TASKS=tasks):
    run = start("reviewed", {})  # enqueued with the tasks executor (run by the immediate backend)
    run.refresh_from_db()
    assert run.status == "paused", run.status
    review.approve(run.checkpoints.get(), root)
run.refresh_from_db()
assert run.status == "completed", run.status
print("ok")
"""
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": "sqlite:///:memory:", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_the_trace_context_sent_with_a_run_never_carries_the_baggage(otel, pipelines, people):
    from django_tasks_db.models import DBTaskResult
    from opentelemetry import baggage, context

    token = context.attach(baggage.set_baggage("user.email", "ada@example.com"))  # the host's own baggage
    try:
        with otel.tracer_provider.get_tracer("test").start_as_current_span("request"):
            sent = tracing.carrier()
            with override_settings(STEPKIT={**settings.STEPKIT, "EXECUTOR": "tasks"}):
                start("traced", {}, user=people.alice)  # django-tasks-db stores the task's arguments
    finally:
        context.detach(token)
    assert set(sent) == {"traceparent"}
    [stored] = DBTaskResult.objects.values_list("args_kwargs", flat=True)
    assert set(stored["kwargs"]["trace_context"]) == {"traceparent"}
    assert "ada@example.com" not in json.dumps(stored)


def test_a_worker_given_no_trace_context_starts_a_trace_of_its_own(otel, pipelines, people):
    from stepkit_django.tasks import advance_run

    tasks = {"default": {"BACKEND": DUMMY, "QUEUES": ["default"]}, "now": {"BACKEND": IMMEDIATE, "QUEUES": ["default"]}}
    with override_settings(STEPKIT={**settings.STEPKIT, "EXECUTOR": "tasks"}, TASKS=tasks):
        with otel.tracer_provider.get_tracer("test").start_as_current_span("request"):
            run = start("traced", {}, user=people.alice)  # the message, kept by the dummy backend
        assert run.status == RunStatus.QUEUED
        advance_run.using(backend="now").enqueue(str(run.pk))  # as sent by a sender with tracing off
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    [advance] = otel.spans("stepkit.advance")
    assert list(advance.links) == [] and advance.parent is None and advance.kind == SpanKind.INTERNAL
    assert advance.attributes["stepkit.run.status"] == "paused"


@task()
def advance_run_without_trace_context(run_id: str) -> None:
    """A custom task written before ``trace_context`` existed."""
    jobs.advance_run(run_id)


class OwnTasksExecutor(TasksExecutor):
    task = f"{__name__}.advance_run_without_trace_context"


def test_a_custom_task_that_takes_no_trace_context_is_sent_the_run_s_id_alone(otel, pipelines, people, caplog):
    accepts_trace_context.cache_clear()
    tasks = {"default": {"BACKEND": IMMEDIATE, "QUEUES": ["default"]}}
    executor = f"{__name__}.OwnTasksExecutor"
    with override_settings(STEPKIT={**settings.STEPKIT, "EXECUTOR": executor}, TASKS=tasks):
        with otel.tracer_provider.get_tracer("test").start_as_current_span("request"):
            run = start("traced", {}, user=people.alice)
        review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED  # both advances went through
    warned = [r.getMessage() for r in caplog.records if "does not accept trace_context" in r.getMessage()]
    assert warned == [
        f"The task {__name__}.advance_run_without_trace_context does not accept trace_context: runs are sent "
        "to it without their trace context (add trace_context=None to it and pass it to jobs.advance_run "
        "to link its spans)"
    ]  # once, not once per run
    assert [list(s.links) for s in otel.spans("stepkit.advance")] == [[], []]


def advance_with_any_keywords(run_id, **options):
    """A function taking any keyword (a Celery task's own wrapper)."""


def test_which_tasks_take_the_trace_context_is_read_from_their_signature():
    accepts_trace_context.cache_clear()
    assert accepts_trace_context("stepkit_django.tasks.advance_run")
    assert accepts_trace_context("stepkit_django.contrib.celery.advance_run")  # a Celery task's run()
    assert accepts_trace_context(f"{__name__}.advance_with_any_keywords")
    assert not accepts_trace_context(f"{__name__}.advance_run_without_trace_context")


def test_an_expiry_another_sweeper_applied_first_has_no_decision_span(otel, pipelines, people):
    from stepkit_django.review import _expire_one

    run = start("traced", {}, user=people.alice)
    checkpoint = run.checkpoints.get()
    review.reject(checkpoint, people.bob, comment="no")  # decided after a sweeper listed it as due
    otel.exporter.clear()
    assert _expire_one(checkpoint.pk, timezone.now() + timedelta(days=1)) == 0  # that sweeper's turn
    assert otel.spans("stepkit.decision") == []


def test_an_escalation_s_decision_span_says_escalated(otel, registered_pipelines, people):
    review_rule = Review(timeout=timedelta(hours=1), on_timeout="escalate", escalate_to_group="managers")
    registered_pipelines(stepkit("escalates").step("draft", lambda c: {}, review=review_rule))
    run = start("escalates", {}, user=people.alice)
    checkpoint = run.checkpoints.get()
    Checkpoint.objects.filter(pk=checkpoint.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert review.expire_due() == 1
    [decision] = otel.spans("stepkit.decision")
    assert dict(decision.attributes) == {
        "stepkit.decision.action": "expire",
        "stepkit.checkpoint.id": str(checkpoint.pk),
        "stepkit.run.id": str(run.pk),
        "stepkit.pipeline": "escalates",
        "stepkit.step": "draft",
        "stepkit.decision.outcome": "escalated",
    }
    assert otel.values("stepkit.checkpoints.decided") == {}  # still pending: not a decision
