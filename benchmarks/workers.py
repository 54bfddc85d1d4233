"""Throughput of real db_worker processes on PostgreSQL: ``python benchmarks/workers.py`` (``make bench-workers``).

For 1, 2 and 4 ``manage.py db_worker`` processes (django-tasks-db), enqueue a batch
of runs of a 5-step pipeline of trivial steps and time until all are completed.
Prints runs per second, the median time per step inside a worker (between
consecutive ``step_completed`` events of a run), and the statements a step costs,
counted on one run, against the same statement sent with raw psycopg.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepkit_bench")
RUNS = int(os.environ.get("BENCH_RUNS", "300"))


def ensure_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


ensure_database()

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from stepkit_django import start  # noqa: E402
from stepkit_django.models import AuditEvent, PipelineRun  # noqa: E402


def clear() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE stepkit_django_auditevent, stepkit_django_approval, stepkit_django_checkpoint_assigned_users, "
            "stepkit_django_checkpoint_assigned_groups, stepkit_django_checkpoint, stepkit_django_pipelinerun, "
            "django_tasks_database_dbtaskresult CASCADE"
        )


def round_trips() -> tuple[int, list[str]]:
    """Statements of one inline 5-step run, and those of one middle step."""
    clear()
    sent: list[tuple[str, list[Any]]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with override_settings(STEPKIT={"EXECUTOR": "inline"}), connection.execute_wrapper(record):
        start("bench-five", {})
    # a step is everything after one progress save up to and including the next
    saves = [i for i, (s, params) in enumerate(sent) if "stepkit_django_auditevent" in s and "step_completed" in params]
    step = [s for s, _ in sent[saves[1] + 1 : saves[2] + 1]] if len(saves) >= 3 else []
    return len(sent), [label(s) for s in step]


def label(sql: str) -> str:
    words = sql.split()
    if words[0] == "WITH":
        return "WITH (UPDATE of the run + INSERT of its event)"
    if words[0] == "INSERT":
        return f"INSERT {words[2]}"
    if words[0] in ("UPDATE", "DELETE"):
        return f"{words[0]} {words[1]}"
    return words[0]


RAW_STEP = (
    "WITH saved AS (UPDATE stepkit_django_pipelinerun SET context = %s, updated_at = now() WHERE id = %s "
    "RETURNING id) INSERT INTO stepkit_django_auditevent (run_id, pipeline_name, action, timestamp, data, note) "
    "SELECT id, 'raw', 'step_completed', now(), '{}', '' FROM saved"
)


def raw_step_floor(samples: int = 300) -> float:
    """Median ms of the same statement sent with raw psycopg in autocommit: one round trip."""
    import json

    import psycopg

    run = PipelineRun.objects.create(pipeline_name="raw", context={"n": 0})
    times = []
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        for i in range(samples):
            started = time.perf_counter()
            conn.execute(RAW_STEP, [json.dumps({"n": i}), run.pk])
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(workers: int) -> tuple[float, float]:
    clear()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "django", "db_worker", "--interval", "0.05", "--no-startup-delay", "--no-reload"]
    procs = [
        subprocess.Popen(
            [*args, "--worker-id", f"bench-{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    time.sleep(2.0)  # let the workers start (Django import) before the clock starts
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():  # all runs become visible to the workers at once
        for i in range(RUNS):
            start("bench-five", {"i": i})
    while PipelineRun.objects.filter(status="completed").count() < RUNS:
        time.sleep(0.05)
        if time.perf_counter() - started > 600:
            raise SystemExit("timed out")
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)
    gaps = []
    events = AuditEvent.objects.filter(action="step_completed").order_by("run_id", "timestamp", "id")
    previous = None
    for run_id, timestamp in events.values_list("run_id", "timestamp"):
        if previous and previous[0] == run_id:
            gaps.append((timestamp - previous[1]).total_seconds())
        previous = (run_id, timestamp)
    return RUNS / elapsed, statistics.median(gaps) * 1000


def main() -> None:
    call_command("migrate", verbosity=0)
    total, step = round_trips()
    clear()
    floor = raw_step_floor()
    print(f"stepkit_django worker benchmark: {RUNS} runs of a 5-step trivial pipeline, PostgreSQL, db_worker")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"Python {platform.python_version()}, Django {django.get_version()}, {machine}")
    print(f"Statements of one inline run: {total}; one step: {len(step)} ({', '.join(step)})")
    print(f"The same statement with raw psycopg: {floor:.2f} ms (median)")
    print()
    print(f"{'workers':>8}{'runs / s':>12}{'ms / step (median)':>22}{'ratio to raw':>16}")
    for workers in (1, 2, 4):
        rate, per_step = measure(workers)
        print(f"{workers:>8}{rate:>12.1f}{per_step:>22.2f}{per_step / floor:>16.2f}")


if __name__ == "__main__":
    main()
