"""The trace context travels with a run's id to real worker processes (django-tasks-db's db_worker, a
Celery worker on Redis): the worker's advance span links to the span that enqueued the run, the request
that started it, then the approval that resumed it. The workers write their spans to a file
(``worker_settings``), read back here."""

import sys

import pytest
from django.test import override_settings

from stepkit_django import review, start
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus
from tests.processes import TASKS, db_worker, spawn, stop, wait_for
from tests.system.test_workers import redis_available
from tests.telemetry import spans_file

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKER_SETTINGS = "tests.telemetry.worker_settings"
INPUT = {"message": "Hi", "customer": "Ada", "to": "ada@example.com"}


def hex_ids(span):
    context = span.get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def the_approval_story(otel, people, spans, logs, executor):
    """Start a run in a request span, let the worker pause it, approve it, let the worker finish it; the
    request's and the decision's spans, and the worker's spans as written."""
    with override_settings(STEPKIT={**TASKS, "EXECUTOR": executor}):
        with otel.tracer_provider.get_tracer("test").start_as_current_span("POST /runs") as request:
            run = start("email-approval", INPUT, user=people.alice)
        assert run.status == RunStatus.QUEUED
        wait_for(
            lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.PAUSED,
            timeout=120,
            message="the worker to pause the run",
            logs=logs,
        )
        review.approve(run.checkpoints.get(), people.bob)
        wait_for(
            lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
            timeout=120,
            message="the worker to finish the run",
            logs=logs,
        )
    wait_for(
        lambda: len([s for s in spans_file.read(spans) if s["name"] == "stepkit.advance"]) == 2,
        timeout=30,
        message="the worker's two advance spans",
        logs=logs,
    )
    [decision] = otel.spans("stepkit.decision")
    return run, request, decision, spans_file.read(spans)


def check_links(run, request, decision, written):
    first, resumed = (s for s in written if s["name"] == "stepkit.advance")
    assert first["links"] == [hex_ids(request)]
    assert resumed["links"] == [hex_ids(decision)]
    assert resumed["trace_id"] != hex_ids(decision)["trace_id"]  # a trace of its own, linked to its cause
    assert resumed["kind"] == "CONSUMER"
    assert resumed["attributes"] == {
        "stepkit.run.id": str(run.pk),
        "stepkit.pipeline": "email-approval",
        "stepkit.run.status": "completed",
    }
    steps = {s["attributes"]["stepkit.step"]: s for s in written if s["name"] == "stepkit.step"}
    assert steps["generate"]["parent_id"] == first["span_id"]
    assert steps["send"]["parent_id"] == resumed["span_id"]


def test_a_run_resumed_by_a_db_worker_links_to_the_approval_s_span(otel, people, tmp_path):
    spans, log = tmp_path / "spans.jsonl", tmp_path / "worker.log"
    worker = db_worker(log, "traced", DJANGO_SETTINGS_MODULE=WORKER_SETTINGS, STEPKIT_SPANS_FILE=str(spans))
    try:
        check_links(*the_approval_story(otel, people, spans, [log], "tasks"))
    finally:
        stop(worker)


def test_a_run_resumed_by_a_celery_worker_links_to_the_approval_s_span(otel, people, tmp_path):
    import redis

    assert redis_available(), "Redis must run on 127.0.0.1:6379 (.ci/run starts it)"
    redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()
    from tests.celery_app import app  # noqa: F401 - makes the test app (and its broker) current

    spans, log = tmp_path / "spans.jsonl", tmp_path / "celery.log"
    celery = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "--concurrency=1"]
    celery += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
    worker = spawn(
        celery,
        log,
        STEPKIT_EXECUTOR="celery",
        DJANGO_SETTINGS_MODULE=WORKER_SETTINGS,
        STEPKIT_SPANS_FILE=str(spans),
    )
    try:
        check_links(*the_approval_story(otel, people, spans, [log], "celery"))
    finally:
        stop(worker)
