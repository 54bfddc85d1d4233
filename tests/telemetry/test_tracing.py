"""The spans, recorded by the OpenTelemetry SDK's in-memory exporter: one per run advance, per call of a
step function, per decision; the trace context sent with a run's id; never a context value."""

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from opentelemetry.trace import SpanKind, StatusCode

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Checkpoint
from stepkit_django.status import RunStatus
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

IMMEDIATE = (
    "django.tasks.backends.immediate.ImmediateBackend"
    if __import__("importlib.util").util.find_spec("django.tasks")
    else "django_tasks.backends.immediate.ImmediateBackend"
)

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
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from stepkit_django import register, start, stepkit, telemetry
assert telemetry.AVAILABLE is False
register(stepkit("plain").step("a", lambda c: {"a": 1}))
assert start("plain", {}).status == "completed"
print("ok")
"""
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": "sqlite:///:memory:", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
