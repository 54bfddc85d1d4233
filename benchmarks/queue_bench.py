"""Scenario 3: the queue at 100,000 checkpoints (API list, admin changelist, raw SQL)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

TOTAL = 100_000
PIPELINES = 10
PAGE = 50
#: request -> (median s, p95 s, ratio to the limit, SQL queries), for the targets table
MEASURED: dict[str, tuple[float, float, float, int]] = {}


def seed(total: int = TOTAL) -> None:
    """100,000 runs and checkpoints across 10 pipelines, 20% pending, created over the last days."""
    from django.db import connection

    from stepkit_django.models import Checkpoint

    if Checkpoint.objects.filter(step="queue-bench").count() == total:
        return
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE stepkit_django_auditevent, stepkit_django_approval, stepkit_django_checkpoint_assigned_users, "
            "stepkit_django_checkpoint_assigned_groups, stepkit_django_checkpoint, stepkit_django_pipelinerun CASCADE"
        )
        c.execute(
            """
            INSERT INTO stepkit_django_pipelinerun (id, pipeline_name, pipeline_version, status, input, context,
                outer_contexts, position, current_step, error, traceback, created_at, updated_at, lease_owner)
            SELECT md5('run' || i)::uuid, 'p' || (i %% %s), 1, 'paused', '{}', '{}', '[]', '[0]', 'queue-bench',
                   '', '', now() - (i || ' seconds')::interval, now(), ''
            FROM generate_series(1, %s) AS i
            """,
            [PIPELINES, total],
        )
        c.execute(
            """
            INSERT INTO stepkit_django_checkpoint (id, run_id, pipeline_name, step, position, token, context, review,
                status, override_data, comment, escalated, version, created_at, updated_at, permission, assigned)
            SELECT md5('cp' || i)::uuid, md5('run' || i)::uuid, 'p' || (i %% %s), 'queue-bench', '[0]', 'token',
                   jsonb_build_object('subject', 'Order ' || i, 'body', repeat('text ', 40)),
                   '{"permission": "stepkit_django.review_checkpoint", "approvals_required": 1}',
                   CASE WHEN (i / %s) %% 5 = 0 THEN 'pending' ELSE 'approved' END, '{}', '', false, 1,
                   now() - (i || ' seconds')::interval, now(), 'stepkit_django.review_checkpoint', false
            FROM generate_series(1, %s) AS i
            """,
            [PIPELINES, PIPELINES, total],
        )
        c.execute("ANALYZE")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def statements(fn: Callable[[], Any]) -> int:
    """How many SQL statements ``fn()`` sends through Django's connection."""
    from django.db import connection

    executed: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        fn()
    return len(executed)


def in_statements(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(seconds of fn(), seconds of those spent inside the cursor's execute())``: the rest is Python."""
    from django.db import connection

    inside = [0.0]

    def clock(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            inside[0] += time.perf_counter() - started

    with connection.execute_wrapper(clock):
        started = time.perf_counter()
        fn()
        total = time.perf_counter() - started
    return total, inside[0]


def measure(fn: Callable[[], Any], rounds: int) -> tuple[list[float], int]:
    for _ in range(3):
        fn()
    queries = statements(fn)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples, queries


def scenario_queue(quick: bool = False) -> list[str]:
    from django.contrib.auth.models import Permission, User
    from django.db import connection
    from django.test import Client

    seed()
    rounds = 10 if quick else 40
    admin, _ = User.objects.get_or_create(username="queue-admin", defaults={"is_superuser": True, "is_staff": True})
    reviewer, created = User.objects.get_or_create(username="queue-reviewer", defaults={"is_staff": True})
    if created:
        reviewer.user_permissions.add(Permission.objects.get(codename="review_checkpoint"))
    clients = {}
    for user in (admin, reviewer):
        client = Client()
        client.force_login(user)
        clients[user.username] = client

    def api(client: Client) -> Callable[[], Any]:
        def call() -> None:
            response = client.get("/api/stepkit/checkpoints/?status=pending&pipeline=p3")
            assert response.status_code == 200 and len(response.json()["results"]) == PAGE

        return call

    def admin_list() -> None:
        response = clients["queue-admin"].get("/admin/stepkit_django/checkpoint/?status=pending&pipeline_name=p3")
        assert response.status_code == 200

    def raw() -> None:
        with connection.cursor() as c:
            c.execute(
                "SELECT COUNT(*) FROM stepkit_django_checkpoint WHERE status = 'pending' AND pipeline_name = 'p3'"
            )
            c.fetchone()
            c.execute(
                "SELECT * FROM stepkit_django_checkpoint WHERE status = 'pending' AND pipeline_name = 'p3' "
                "ORDER BY created_at LIMIT 50"
            )
            c.fetchall()

    def drf_floor() -> None:
        response = clients["queue-admin"].get("/drf/queue/?pipeline=p3")
        assert response.status_code == 200 and len(response.json()["results"]) == PAGE

    rows = {
        "raw SQL (count + first page): the limit": measure(raw, rounds),
        "the same raw SQL behind a DRF view (the framework's floor)": measure(drf_floor, rounds),
        "API list as a superuser": measure(api(clients["queue-admin"]), rounds),
        "API list as a reviewer (permission and assignment filters)": measure(api(clients["queue-reviewer"]), rounds),
        "admin changelist as a superuser": measure(admin_list, rounds),
    }
    limit = statistics.median(rows["raw SQL (count + first page): the limit"][0])
    lines = [
        f"## 3. The queue at {TOTAL:,} checkpoints (10 pipelines, 20% pending)",
        "",
        "`GET checkpoints/?status=pending&pipeline=p3` (first page of 50, oldest first), Django test client.",
        "",
        "| request | median ms | p95 ms | ratio to the limit | SQL queries |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (samples, queries) in rows.items():
        median, p95 = statistics.median(samples), percentile(samples, 0.95)
        MEASURED[name] = (median, p95, median / limit, queries)
        lines.append(f"| {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | {median / limit:.2f} | {queries} |")
    return [*lines, ""]
