"""Runs advanced by real worker processes: django-tasks-db's db_worker and a Celery worker on Redis.

Nothing here is mocked: the workers are separate processes on the test database,
killed with SIGKILL where the test says so.
"""

import os
import signal
import sys

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from stepkit_django import review, start
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.status import RunStatus
from tests.processes import TASKS, db_worker, spawn, stop, wait_for
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_db_workers_run_200_runs_each_exactly_once(tmp_path):
    with override_settings(STEPKIT=TASKS):
        runs = [start("five-steps", {"n": i}) for i in range(200)]
    assert {r.status for r in runs} == {RunStatus.QUEUED}  # nothing ran in the caller
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    workers = [db_worker(logs[0], "worker-1"), db_worker(logs[1], "worker-2")]
    try:
        wait_for(
            lambda: PipelineRun.objects.filter(status=RunStatus.COMPLETED).count() == 200,
            timeout=300,
            message="200 completed runs",
            logs=logs,
        )
    finally:
        stop(*workers)

    completions = AuditEvent.objects.filter(action="run_completed").values("run").annotate(n=Count("id"))
    assert sorted(c["n"] for c in completions) == [1] * 200  # each run completed exactly once
    per_step = SideEffect.objects.filter(kind="step").values("key").annotate(n=Count("id"))
    assert len(per_step) == 1000 and {row["n"] for row in per_step} == {1}  # every step executed once
    assert not PipelineRun.objects.exclude(status=RunStatus.COMPLETED).exists()


def test_a_worker_killed_mid_step_loses_no_run_and_repeats_no_completed_step(tmp_path):
    with override_settings(STEPKIT=TASKS):
        run = start("slow-middle", {})
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = db_worker(first_log, "doomed")
    try:
        wait_for(
            lambda: SideEffect.objects.filter(kind="slow-attempt").exists(),
            timeout=60,
            message="the slow step to start",
            logs=[first_log],
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        stop(first)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.current_step == "a"

    # The lease (2 s) runs out since nobody renews it; then recovery re-queues the run.
    wait_for(
        lambda: PipelineRun.objects.get(pk=run.pk).lease_expires_at < timezone.now(),
        timeout=30,
        message="the lease to expire",
    )
    with override_settings(STEPKIT=TASKS):
        call_command("stepkit_recover")
    second = db_worker(second_log, "rescuer")
    try:
        wait_for(
            lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
            timeout=120,
            message="the recovered run to complete",
            logs=[second_log],
        )
    finally:
        stop(second)

    assert SideEffect.objects.filter(kind="step", key=f"{run.pk}:a").count() == 1  # not repeated
    assert SideEffect.objects.filter(kind="step", key=f"{run.pk}:c").count() == 1
    attempts = list(SideEffect.objects.filter(kind="slow-attempt").values_list("payload", flat=True))
    assert len(attempts) == 2  # the interrupted step ran again, at most twice
    assert attempts[0]["key"] == attempts[1]["key"] == f"stepkit:{run.pk}:slow"
    assert AuditEvent.objects.filter(run=run, action="run_recovered").count() == 1
    assert AuditEvent.objects.filter(run=run, action="run_completed").count() == 1


def redis_available():
    import redis

    try:
        return redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=2).ping()
    except redis.RedisError:
        return False


def test_a_celery_worker_runs_the_human_approval_story(people, tmp_path):
    import redis

    assert redis_available(), "Redis must run on 127.0.0.1:6379 (.ci/run starts it)"
    redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()
    from tests.celery_app import app  # noqa: F401 - makes the test app (and its broker) current

    log = tmp_path / "celery.log"
    worker = spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        log,
        STEPKIT_EXECUTOR="celery",
    )
    try:
        with override_settings(STEPKIT={"EXECUTOR": "celery"}):
            run = start(
                "email-approval", {"message": "Hi", "customer": "Ada", "to": "ada@example.com"}, user=people.alice
            )
            assert run.status == RunStatus.QUEUED
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.PAUSED,
                timeout=120,
                message="the worker to pause the run",
                logs=[log],
            )
            checkpoint = run.checkpoints.get()
            review.approve(checkpoint, people.bob, override_data={"body": "Approved through the service"})
            run.refresh_from_db()
            assert run.status == RunStatus.QUEUED  # the worker, not this process, resumes it
            wait_for(
                lambda: PipelineRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                timeout=120,
                message="the worker to finish the run",
                logs=[log],
            )
    finally:
        stop(worker)
    assert SideEffect.objects.get(kind="email").payload["body"] == "Approved through the service"
