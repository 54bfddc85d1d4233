"""The metrics, recorded by the OpenTelemetry SDK's in-memory reader: runs, steps, checkpoints, decisions,
the pending and overdue gauges, notification failures."""

from datetime import timedelta
from typing import ClassVar

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.models import Checkpoint, Notification
from stepkit_django.notifications import BaseNotifier
from stepkit_django.notifications.delivery import deliver

from .conftest import attrs

# The runs and checkpoints are counted once their transaction commits: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


def boom(context):
    raise ValueError("no")


@pytest.fixture
def pipelines(registered_pipelines):
    registered_pipelines(stepkit("two-steps").step("a", lambda c: {"x": 1}).step("b", lambda c: {"y": 2}))
    registered_pipelines(stepkit("breaks").step("ok", lambda c: {}).step("boom", boom))
    registered_pipelines(
        stepkit("reviewed")
        .step("draft", lambda c: {"text": "hi"}, review=Review(assign_to_group="editors", timeout=timedelta(hours=1)))
        .step("send", lambda c: {"sent": True})
    )


def test_runs_started_completed_and_failed_are_counted_per_pipeline(otel, pipelines, people):
    for _ in range(2):
        start("two-steps", {}, user=people.alice)
    start("breaks", {}, user=people.alice)
    assert otel.values("stepkit.runs.started") == {attrs(pipeline="two-steps"): 2, attrs(pipeline="breaks"): 1}
    assert otel.values("stepkit.runs.completed") == {attrs(pipeline="two-steps"): 2}
    assert otel.values("stepkit.runs.failed") == {attrs(pipeline="breaks"): 1}
    assert otel.values("stepkit.steps.failed") == {attrs(pipeline="breaks", step="boom"): 1}


def test_each_completed_step_is_counted_with_its_duration_in_seconds(otel, pipelines, people):
    start("two-steps", {}, user=people.alice)
    start("two-steps", {}, user=people.alice)
    durations = otel.values("stepkit.step.duration")
    assert set(durations) == {attrs(pipeline="two-steps", step="a"), attrs(pipeline="two-steps", step="b")}
    for count, total in durations.values():
        assert count == 2 and 0 < total < 1  # seconds, not milliseconds
    [metric] = [
        m
        for r in otel.reader.get_metrics_data().resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "stepkit.step.duration"
    ]
    assert metric.unit == "s"


def test_checkpoints_created_and_decided_are_counted_per_outcome_with_the_time_to_decision(otel, pipelines, people):
    runs = [start("reviewed", {}, user=people.alice) for _ in range(3)]
    assert otel.values("stepkit.checkpoints.created") == {attrs(pipeline="reviewed", step="draft"): 3}
    first, second, third = (run.checkpoints.get() for run in runs)
    Checkpoint.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    review.approve(first, people.bob)
    review.reject(second, people.bob, comment="no")
    review.request_changes(third, people.bob, comment="again")
    decided = otel.values("stepkit.checkpoints.decided")
    assert decided == {
        attrs(pipeline="reviewed", step="draft", outcome="approved"): 1,
        attrs(pipeline="reviewed", step="draft", outcome="rejected"): 1,
        attrs(pipeline="reviewed", step="draft", outcome="changes_requested"): 1,
    }
    waited = otel.values("stepkit.checkpoint.time_to_decision")
    count, seconds = waited[attrs(pipeline="reviewed", step="draft", outcome="approved")]
    assert count == 1 and 600 <= seconds < 660
    assert otel.values("stepkit.runs.completed") == {attrs(pipeline="reviewed"): 1}
    assert otel.values("stepkit.runs.rejected") == {attrs(pipeline="reviewed"): 1}
    # The request for changes ran the step again, which paused for a new revision.
    assert otel.values("stepkit.checkpoints.created") == {attrs(pipeline="reviewed", step="draft"): 4}


def test_an_approval_short_of_the_quorum_decides_nothing(otel, registered_pipelines, people):
    registered_pipelines(stepkit("two-approvals").step("sign", lambda c: {}, review=Review(approvals_required=2)))
    run = start("two-approvals", {}, user=people.alice)
    review.approve(run.checkpoints.get(), people.bob)
    assert otel.values("stepkit.checkpoints.decided") == {}


def test_the_gauges_count_pending_and_overdue_checkpoints_per_pipeline_and_step(otel, pipelines, people):
    runs = [start("reviewed", {}, user=people.alice) for _ in range(3)]
    late = runs[0].checkpoints.get()
    Checkpoint.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    review.approve(runs[2].checkpoints.get(), people.bob)  # decided: no longer pending
    assert otel.values("stepkit.checkpoints.pending") == {attrs(pipeline="reviewed", step="draft"): 2}
    assert otel.values("stepkit.checkpoints.overdue") == {attrs(pipeline="reviewed", step="draft"): 1}


def test_the_gauges_are_observed_with_one_query_each(otel, pipelines, people, django_assert_num_queries):
    start("reviewed", {}, user=people.alice)
    with django_assert_num_queries(2):
        otel.metrics()


@pytest.mark.postgres  # Django never closes SQLite's in-memory test database
def test_a_gauge_collected_in_a_thread_of_its_own_closes_the_connection_it_opened(otel, pipelines, people):
    import threading

    from django.db import connection

    start("reviewed", {}, user=people.alice)
    seen = {}

    def collect():  # as the Prometheus exporter's HTTP thread does on a scrape
        seen["pending"] = otel.values("stepkit.checkpoints.pending")
        seen["open"] = connection.connection is not None

    thread = threading.Thread(target=collect)
    thread.start()
    thread.join()
    assert seen == {"pending": {attrs(pipeline="reviewed", step="draft"): 1}, "open": False}


class Down(BaseNotifier):
    """Every send fails."""

    calls: ClassVar[int] = 0

    def send(self, notification, message):
        raise ConnectionError("down")


def test_failed_notification_attempts_are_counted_and_the_last_one_says_so(otel, registered_pipelines, people):
    from django.conf import settings

    registered_pipelines(stepkit("fails").step("boom", boom))
    notifiers = {"down": {"BACKEND": f"{__name__}.Down"}}
    with override_settings(STEPKIT={**settings.STEPKIT, "NOTIFIERS": notifiers, "NOTIFY_MAX_ATTEMPTS": 2}):
        start("fails", {}, user=people.alice)  # the run_failed notification; its first attempt after the commit
        notification = Notification.objects.get()
        deliver(notification.pk, timezone.now() + timedelta(days=1))
    failed = otel.values("stepkit.notifications.failed")
    base = {"stepkit.notification.event": "run_failed", "stepkit.notification.channel": "down"}
    assert failed == {
        attrs(**base, **{"stepkit.notification.final": False}): 1,
        attrs(**base, **{"stepkit.notification.final": True}): 1,
    }


def test_nothing_is_recorded_with_the_setting_off(otel, pipelines, people):
    from django.conf import settings

    with override_settings(STEPKIT={**settings.STEPKIT, "TELEMETRY": False}):
        run = start("reviewed", {}, user=people.alice)
        review.approve(run.checkpoints.get(), people.bob)
        assert otel.metrics() == {}
    assert otel.spans() == []


class Undo(Exception):
    """Raised to roll back the test's transaction, as an error in an ``ATOMIC_REQUESTS`` view does."""


def test_decisions_and_run_ends_rolled_back_with_the_caller_s_transaction_are_not_counted(otel, pipelines, people):
    approved, rejected, cancelled = (start("reviewed", {}, user=people.alice) for _ in range(3))
    decisions = [
        lambda: review.approve(approved.checkpoints.get(), people.bob),  # the inline executor completes the run
        lambda: review.reject(rejected.checkpoints.get(), people.bob, comment="no"),
        lambda: review.cancel_run(cancelled, people.root),
    ]
    for decide in decisions:
        with pytest.raises(Undo), transaction.atomic():
            decide()
            raise Undo
    assert Checkpoint.objects.filter(status="pending").count() == 3  # all three undone
    assert otel.values("stepkit.checkpoints.decided") == {}
    assert otel.values("stepkit.checkpoint.time_to_decision") == {}
    for end in ("completed", "rejected", "cancelled"):
        assert otel.values(f"stepkit.runs.{end}") == {}
    with transaction.atomic():  # committed this time: counted once the commit happens
        review.approve(approved.checkpoints.get(), people.bob)
        assert otel.values("stepkit.checkpoints.decided") == {}
    assert otel.values("stepkit.checkpoints.decided") == {
        attrs(pipeline="reviewed", step="draft", outcome="approved"): 1
    }
    assert otel.values("stepkit.runs.completed") == {attrs(pipeline="reviewed"): 1}
    [(count, _)] = otel.values("stepkit.checkpoint.time_to_decision").values()
    assert count == 1


def test_cancelled_and_expired_runs_are_counted_by_their_end(otel, registered_pipelines, people):
    for rule in ("reject", "fail", "approve"):
        registered_pipelines(
            stepkit(f"on-{rule}")
            .step("draft", lambda c: {}, review=Review(timeout=timedelta(hours=1), on_timeout=rule))
            .step("send", lambda c: {})
        )
    runs = {rule: start(f"on-{rule}", {}, user=people.alice) for rule in ("reject", "fail", "approve")}
    cancelled = start("on-reject", {}, user=people.alice)
    review.cancel_run(cancelled, people.root)
    Checkpoint.objects.filter(run__in=runs.values()).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert review.expire_due() == 3
    assert otel.values("stepkit.runs.cancelled") == {attrs(pipeline="on-reject"): 1}
    assert otel.values("stepkit.runs.rejected") == {attrs(pipeline="on-reject"): 1}
    assert otel.values("stepkit.runs.failed") == {attrs(pipeline="on-fail"): 1}
    assert otel.values("stepkit.runs.completed") == {attrs(pipeline="on-approve"): 1}
    assert otel.values("stepkit.checkpoints.decided") == {
        attrs(pipeline="on-reject", step="draft", outcome="cancelled"): 1,
        attrs(pipeline="on-reject", step="draft", outcome="expired"): 1,
        attrs(pipeline="on-fail", step="draft", outcome="expired"): 1,
        attrs(pipeline="on-approve", step="draft", outcome="approved"): 1,
    }
    assert otel.values("stepkit.checkpoints.pending") == {}


def test_with_the_api_and_no_sdk_a_run_s_steps_cost_nothing_more(registered_pipelines, monkeypatch):
    from stepkit_django.execution import runner
    from stepkit_django.telemetry import api

    assert api.tracer() is None and api.meter_provider() is None  # opentelemetry-api, no SDK provider
    handed = []
    run_sync = runner.run_sync  # type: ignore[attr-defined]

    def watch(pipeline, input, resume, config):  # the engine itself still runs the steps
        handed.append(dict(config))
        return run_sync(pipeline, input, resume, config)

    monkeypatch.setattr(runner, "run_sync", watch)
    registered_pipelines(stepkit("plain").step("a", lambda c: {}).step("b", lambda c: {}))
    assert start("plain", {}).status == "completed"
    [config] = handed
    assert "around_step" not in config  # no span around each step
    # The runner's own handlers, not the counting ones that wrap them.
    assert config["on_step_complete"].__func__ is runner.Progress.step_completed
    assert config["on_error"].__qualname__.startswith("_execute.")
