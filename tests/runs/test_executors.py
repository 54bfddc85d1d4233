"""Executors, leases, the heartbeat and current_step()."""

import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from typing import ClassVar

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from stepkit_django import current_step, review, start, stepkit
from stepkit_django.execution.executors import BaseExecutor
from stepkit_django.execution.jobs import recover
from stepkit_django.execution.leases import acquire, new_owner
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus

IMMEDIATE = (
    "django.tasks.backends.immediate.ImmediateBackend"
    if __import__("importlib.util").util.find_spec("django.tasks")
    else "django_tasks.backends.immediate.ImmediateBackend"
)


@contextmanager
def statements():
    """Every statement sent on the default connection, with its parameters (as sent, before quoting)."""
    from django.db import connection

    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def test_current_step_is_none_outside_steps():
    assert current_step() is None


@pytest.mark.django_db
def test_current_step_gives_a_stable_idempotency_key_across_retries(registered_pipelines):
    seen = []

    def charge(ctx):
        step = current_step()
        seen.append((step.step, step.attempt, step.idempotency_key))
        if len(seen) == 1:
            raise ConnectionError("provider timed out")
        return {"charged": True}

    registered_pipelines(stepkit("charge").step("charge", charge, retries=1))
    run = start("charge", {})
    key = f"stepkit:{run.pk}:charge"
    assert seen == [("charge", 1, key), ("charge", 2, key)]


@pytest.mark.django_db
def test_parallel_items_and_nested_steps_have_their_own_keys(registered_pipelines):
    keys = []
    record = lambda ctx: keys.append(current_step().idempotency_key) or {}  # noqa: E731
    registered_pipelines(stepkit("fan").step("both", record, record).step("outer", stepkit().step("inner", record)))
    run = start("fan", {})
    prefix = f"stepkit:{run.pk}:"
    assert sorted(keys) == sorted([prefix + "both#0", prefix + "both#1", prefix + "outer/inner"])


def test_engine_runs_outside_django_runs_have_no_key():
    infos = []
    stepkit().step("s", lambda ctx: infos.append(current_step()) or {}).run({})
    assert infos[0].run_id is None and infos[0].idempotency_key is None and infos[0].step == "s"


@pytest.mark.django_db(transaction=True)
def test_tasks_executor_enqueues_after_commit_and_the_task_advances_the_run(people):
    with override_settings(
        STEPKIT={"EXECUTOR": "tasks"}, TASKS={"default": {"BACKEND": IMMEDIATE, "QUEUES": ["default"]}}
    ):
        run = start("email-approval", {"message": "m", "customer": "c", "to": "t"}, user=people.alice)
        assert run.status == RunStatus.PAUSED  # the immediate backend ran the task at commit
        review.approve(run.checkpoints.get(), people.bob)
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_tasks_executor_with_a_queue_leaves_the_run_queued_until_a_worker_takes_it(registered_pipelines):
    registered_pipelines(stepkit("later").step("s", lambda c: {"done": True}))
    with override_settings(STEPKIT={"EXECUTOR": "tasks"}):
        run = start("later", {})
    assert run.status == RunStatus.QUEUED
    from django_tasks_db.models import DBTaskResult

    [task] = DBTaskResult.objects.all()
    assert task.args_kwargs["args"] == [str(run.pk)]  # only the id travels


def test_unknown_executor_is_a_configuration_error(db, registered_pipelines):
    from django.core.exceptions import ImproperlyConfigured

    registered_pipelines(stepkit("x").step("s"))
    with override_settings(STEPKIT={"EXECUTOR": "threads"}), pytest.raises(ImproperlyConfigured, match="EXECUTOR"):
        start("x", {})


@pytest.mark.django_db
def test_only_one_owner_can_take_a_run(registered_pipelines):
    registered_pipelines(stepkit("queued").step("s"))
    with override_settings(STEPKIT={"EXECUTOR": "tasks"}):
        run = start("queued", {})
    first, second = new_owner(), new_owner()
    assert acquire(run.pk, first) is True
    assert acquire(run.pk, second) is False  # the lease is valid
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert acquire(run.pk, second) is True  # expired: taken over
    run.refresh_from_db()
    assert run.lease_owner == second


@pytest.mark.postgres  # three threads writing at once: SQLite's shared in-memory database locks whole tables
@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_long_step_leased(registered_pipelines):
    release = threading.Event()
    registered_pipelines(stepkit("long").step("wait", lambda c: release.wait(10) and {"waited": True}))
    with override_settings(STEPKIT={"EXECUTOR": "inline", "LEASE_SECONDS": 1.0}):

        def run_in_thread():
            try:
                start("long", {})
            finally:
                connections.close_all()

        worker = threading.Thread(target=run_in_thread)
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while not PipelineRun.objects.filter(status=RunStatus.RUNNING).exists():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(2.5)  # more than two lease lengths: only renewals keep it
            assert recover() == 0
            run = PipelineRun.objects.get()
            assert run.status == RunStatus.RUNNING and run.lease_expires_at > timezone.now()
        finally:
            release.set()
            worker.join(15)
    assert PipelineRun.objects.get().status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_stepkit_recover_command(registered_pipelines):
    registered_pipelines(stepkit("stuck").step("s", lambda c: {"ok": True}))
    with override_settings(STEPKIT={"EXECUTOR": "tasks"}):
        run = start("stuck", {})
    acquire(run.pk, "dead-worker")
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=5))
    out = StringIO()
    call_command("stepkit_recover", stdout=out)  # inline executor: finishes it here
    assert out.getvalue().strip() == "1 run(s) re-queued."
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.events.get(action="run_recovered").data["lease_owner"] == "dead-worker"


@pytest.mark.django_db
def test_inline_start_writes_the_run_held_here_and_recovery_takes_over_if_this_process_dies_before_or_after_approval(
    registered_pipelines, people, monkeypatch
):
    from stepkit_django import Review
    from stepkit_django.execution import runner as runner_module

    calls = []
    registered_pipelines(
        stepkit("held")
        .step("draft", lambda c: calls.append("draft") or {"text": "hi"}, review=Review())
        .step("send", lambda c: calls.append("send") or {"sent": True})
    )

    def dies_before_running(run, **kwargs):
        raise SystemExit("the process died")  # after the write committed, before any step ran

    real_execute = runner_module.execute_held  # what the inline executor calls for a run it holds
    monkeypatch.setattr(runner_module, "execute_held", dies_before_running)
    with pytest.raises(SystemExit):
        start("held", {}, user=people.alice)
    run = PipelineRun.objects.get()
    # No separate UPDATE took it: the run was written running, under a lease of this process.
    assert run.status == RunStatus.RUNNING and run.lease_owner and run.lease_expires_at > timezone.now()
    assert run.started_at is not None and calls == []
    assert list(run.events.values_list("action", flat=True)) == ["run_started"]

    monkeypatch.setattr(runner_module, "execute_held", real_execute)
    assert recover() == 0  # the lease is still valid: nobody takes it
    assert recover(now=run.lease_expires_at + timedelta(seconds=1)) == 1  # re-queued, then run here (inline)
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and calls == ["draft"]

    monkeypatch.setattr(runner_module, "execute_held", dies_before_running)
    with pytest.raises(SystemExit):
        review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.lease_owner and calls == ["draft"]
    assert run.events.filter(action__in=["approved", "resumed"]).count() == 2

    monkeypatch.setattr(runner_module, "execute_held", real_execute)
    assert recover(now=run.lease_expires_at + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and calls == ["draft", "send"]
    assert run.context.pop("review")["outcome"] == "approved"
    assert run.context == {"text": "hi", "sent": True}


@pytest.mark.postgres  # the server ends the step's own connection, as a database restart does
@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_is_not_the_runs_failure(registered_pipelines):
    from django.db import OperationalError, connection

    from stepkit_django.execution.runner import advance

    attempts = []

    def cut_the_connection(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return {"done": True}

    registered_pipelines(stepkit("cut").step("first", lambda c: {"first": True}).step("cut", cut_the_connection))
    with override_settings(STEPKIT={"EXECUTOR": "tasks", "LEASE_SECONDS": 1.0}):
        run = start("cut", {})
        with pytest.raises(OperationalError):
            advance(run.pk)
        run.refresh_from_db()  # a new connection
        assert run.status == RunStatus.RUNNING and run.current_step == "first"  # not failed: left for recovery
        assert not run.error
        PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert recover() == 1
        advance(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and len(attempts) == 2


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_during_a_step_records_that_step_and_runs_no_further(registered_pipelines, people):
    from stepkit_django import review

    def cancel_meanwhile(ctx):
        step = current_step()
        assert step is not None and step.run_id is not None
        review.cancel_run(PipelineRun.objects.get(pk=step.run_id), people.root)
        return {"b": True}

    ran = []
    registered_pipelines(
        stepkit("cut-short")
        .step("a", lambda c: {"a": True})
        .step("b", cancel_meanwhile)
        .step("c", lambda c: ran.append("c") or {"c": True})
    )
    run = start("cut-short", {})
    assert run.status == RunStatus.CANCELLED and ran == []  # stopped at the step boundary
    # b ran (its effects happened): the trail and the run say so
    assert run.current_step == "b" and run.context == {"a": True, "b": True}
    assert [e.data["step"] for e in run.events.filter(action="step_completed")] == ["a", "b"]
    assert run.lease_owner == "" and run.lease_expires_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_step_is_saved_by_one_statement_and_receivers_still_get_a_transaction(registered_pipelines):
    from django.db import connection

    from stepkit_django.signals import step_completed

    registered_pipelines(stepkit("three").step("a").step("b").step("c"))

    def saves(seen):
        return [
            sql.split()[0] for sql, params in seen if "stepkit_django_auditevent" in sql and "step_completed" in params
        ]

    with statements() as alone:
        run = start("three", {})
    # UPDATE and INSERT in one statement; the last step's with the run's end
    assert saves(alone) == ["WITH"] * 3
    seen = []

    def listener(sender, run, event, **kwargs):
        seen.append(connection.in_atomic_block)

    step_completed.connect(listener)
    try:
        with statements() as observed:
            second = start("three", {})
    finally:
        step_completed.disconnect(listener)
    assert seen == [True] * 3  # receivers run inside the step's transaction
    assert saves(observed) == ["WITH"] * 3
    for r in (run, second):
        assert [e.data["step"] for e in r.events.filter(action="step_completed")] == ["a", "b", "c"]
        assert r.status == RunStatus.COMPLETED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_later_steps_send_only_the_changed_keys_and_the_stored_context_stays_exact(
    registered_pipelines,
):
    import datetime
    import decimal
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    big = "x" * 50_000
    mismatches = []

    def checked(output):
        def step(ctx):
            info = current_step()
            assert info is not None and info.run_id is not None
            stored = PipelineRun.objects.get(pk=info.run_id).context
            expected = json.loads(json.dumps(ctx, cls=DjangoJSONEncoder))
            if stored != expected:
                mismatches.append((info.step, stored, expected))
            return output(ctx) if callable(output) else output

        return step

    inner = stepkit("inner").step("i1", checked({"inner": 1})).step("i2", checked({"inner": 2}))
    pipeline = (
        stepkit("deltas")
        .step("a", checked({"big": big, "n": 1}))
        .step("b", checked({"n": 2, "when": datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)}))
        .step("c", checked({"amount": decimal.Decimal("1.50"), "nested": {"deep": [1, 2]}}))
        .transform("drop", lambda ctx: {k: v for k, v in ctx.items() if k != "when"})  # a key removed
        .step("d", checked({"n": 3}))
        .step("sub", inner)
        .step("e", checked({"nested": {"deep": [3]}}))
        .step("f", checked({}))
    )
    registered_pipelines(pipeline)
    with statements() as queries:
        run = start("deltas", {"n": 0})
    assert run.status == RunStatus.COMPLETED, run.error
    assert mismatches == []
    run.refresh_from_db()
    assert run.context["big"] == big and run.context["n"] == 3 and run.context["nested"] == {"deep": [3]}
    assert "when" not in run.context and run.context["amount"] == "1.50"
    # One write per step; the last step ("f") is written by the run's end, with the completion.
    saves = [(sql, params) for sql, params in queries if sql.startswith('WITH u0 AS (UPDATE "stepkit')]
    merged = [params for sql, params in saves if '"context" = "context" ||' in sql]
    assert len(saves) == 10 and 0 < len(merged) < len(saves)
    assert "completed" in saves[-1][1] and "step_completed" in saves[-1][1]
    # A merged save sends only what changed: never the big value written by step "a".
    assert not any(big in repr(getattr(value, "obj", value)) for params in merged for value in params)


class RecordingExecutor(BaseExecutor):
    """A backend of the project's own: records the runs it is handed."""

    sent: ClassVar[list[str]] = []

    def enqueue(self, run_id: str) -> None:
        self.sent.append(run_id)


@pytest.mark.django_db(transaction=True)
def test_an_executor_is_chosen_by_dotted_path(registered_pipelines):
    registered_pipelines(stepkit("handed-over").step("a", lambda c: {"a": 1}))
    with override_settings(STEPKIT={"EXECUTOR": "tests.runs.test_executors.RecordingExecutor"}):
        run = start("handed-over", {})
    assert run.status == RunStatus.QUEUED and RecordingExecutor.sent == [str(run.pk)]  # sent after the commit


def test_an_executor_path_that_is_no_backend_is_a_system_check_error():
    from stepkit_django.checks import check_settings

    for path in ("no.such.module.Executor", "stepkit_django.models.PipelineRun"):
        with override_settings(STEPKIT={"EXECUTOR": path}):
            assert [e.id for e in check_settings()] == ["stepkit_django.E006"]


@pytest.mark.django_db
def test_an_inline_approval_writes_the_run_held_here_and_no_statement_takes_its_lease(registered_pipelines, people):
    from stepkit_django import Review
    from stepkit_django.signals import checkpoint_decided

    registered_pipelines(
        stepkit("held-approval").step("draft", lambda c: {"text": "hi"}, review=Review()).step("send", lambda c: {})
    )
    cp = start("held-approval", {}, user=people.alice).checkpoints.get()
    seen = []

    def on_decided(sender, run, **kwargs):
        stored = PipelineRun.objects.get(pk=run.pk)
        seen.append((stored.status, stored.lease_owner == run.lease_owner != ""))

    checkpoint_decided.connect(on_decided, weak=False)
    try:
        with statements() as sent:
            review.approve(cp, people.bob)
    finally:
        checkpoint_decided.disconnect(on_decided)
    assert seen == [(RunStatus.RUNNING, True)]  # the decision's own UPDATE of the run took the lease
    assert not [sql for sql, _ in sent if "COALESCE" in sql]  # leases.take()'s UPDATE was not sent
    assert PipelineRun.objects.get().status == RunStatus.COMPLETED
