"""Scenario 3: the queue at 100,000 checkpoints with 10 KB contexts (API list, admin changelist, title search).

Run alone with ``python benchmarks/queue_bench.py`` (``BENCH_QUICK=1`` for fewer rounds): it creates
its database on the local PostgreSQL (``DATABASE_URL``, default ``stepkit_bench``), migrates it and
prints the table; ``make bench`` runs it with the other scenarios.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOTAL = 100_000
PIPELINES = 10
PAGE = 50
#: Payees: each is the payee of TOTAL / PAYEES checkpoints (a fifth of them pending).
PAYEES = 5_000
#: The step of the seeded checkpoints; a new value re-seeds a database seeded by an older version.
SEED_STEP = "queue-bench-10k"
#: request -> (median s, p95 s, ratio to the limit, SQL queries), for the targets table
MEASURED: dict[str, tuple[float, float, float, int]] = {}
#: request -> its p95 target in seconds (the lists' is 50 ms, a search's 100 ms)
TARGET_P95: dict[str, float] = {}
#: requests that are searches: not compared with the list's raw SQL
SEARCHES: set[str] = set()


def seed(total: int = TOTAL) -> None:
    """100,000 runs and checkpoints across 10 pipelines, 20% pending, created over the last days.

    Each checkpoint has a context of about 10 KB (hex text, which compresses about as little as
    prose does), a title ``Pay Supplier 0042 1234 EUR`` (5,000 payees) and a summary with its
    invoice number and memo, as ``Review(title=..., summary=...)`` would write them.
    """
    from django.db import connection

    from stepkit_django.models import Checkpoint

    if Checkpoint.objects.filter(step=SEED_STEP).count() == total:
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
                status, override_data, comment, escalated, version, created_at, updated_at, permission, assigned,
                title, summary, revision)
            SELECT md5('cp' || i)::uuid, md5('run' || i)::uuid, 'p' || (i %% %s), %s, '[0]', 'token',
                   jsonb_build_object(
                       'payee', 'Supplier ' || lpad((i %% %s)::text, 4, '0'), 'amount', 1000 + i %% 9000,
                       'invoice', 'INV-' || i,
                       'lines', (SELECT jsonb_agg(md5(i || '-' || j)) FROM generate_series(1, 290) AS j)
                   ),
                   '{"permission": "stepkit_django.review_checkpoint", "approvals_required": 1}',
                   CASE WHEN (i / %s) %% 5 = 0 THEN 'pending' ELSE 'approved' END, '{}', '', false, 1,
                   now() - (i || ' seconds')::interval, now(), 'stepkit_django.review_checkpoint', false,
                   'Pay Supplier ' || lpad((i %% %s)::text, 4, '0') || ' ' || (1000 + i %% 9000) || ' EUR',
                   jsonb_build_object('Invoice', 'INV-' || i, 'Memo', 'order ' || (i %% 777)), 1
            FROM generate_series(1, %s) AS i
            """,
            [PIPELINES, SEED_STEP, PAYEES, PIPELINES, PAYEES, total],
        )
    with connection.cursor() as c:  # outside a transaction: VACUUM sets the visibility map, as autovacuum would
        c.execute("VACUUM ANALYZE stepkit_django_pipelinerun, stepkit_django_checkpoint")


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


#: The columns of a queue row: what the limit reads (the contexts stay unread, as on the queue page).
ROW_COLUMNS = (
    "id, run_id, pipeline_name, step, title, summary, review, status, claimed_by_id, claimed_at, decided_by_id, "
    "decided_at, expires_at, version, created_at, updated_at, assigned"
)
#: A payee whose 20 checkpoints are all pending: the search finds a page of 20.
SEARCHED_PAYEE = "Supplier 0050"


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

    def admin_page(query: str, user: str = "queue-admin", found: int = PAGE) -> Callable[[], Any]:
        def call() -> None:
            response = clients[user].get(f"/admin/stepkit_django/checkpoint/{query}")
            assert response.status_code == 200
            assert response.content.count(b'<td class="action-checkbox">') == found, query

        return call

    def api_search(client: Client) -> Callable[[], Any]:
        def call() -> None:
            response = client.get("/api/stepkit/checkpoints/", {"search": SEARCHED_PAYEE})
            assert response.status_code == 200 and len(response.json()["results"]) == TOTAL // PAYEES

        return call

    search = f"?q={SEARCHED_PAYEE.replace(' ', '+')}"

    def raw() -> None:
        with connection.cursor() as c:
            c.execute(
                "SELECT COUNT(*) FROM stepkit_django_checkpoint WHERE status = 'pending' AND pipeline_name = 'p3'"
            )
            c.fetchone()
            c.execute(
                f"SELECT {ROW_COLUMNS} FROM stepkit_django_checkpoint WHERE status = 'pending' "
                "AND pipeline_name = 'p3' ORDER BY created_at LIMIT 50"
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
        "admin changelist, the whole pending queue, as a reviewer": measure(admin_page("", "queue-reviewer"), rounds),
        'admin changelist under "All" (pending first) as a superuser': measure(admin_page("?status=all"), rounds),
        "admin title search as a superuser": measure(admin_page(search, found=TOTAL // PAYEES), rounds),
        "admin title search as a reviewer": measure(admin_page(search, "queue-reviewer", TOTAL // PAYEES), rounds),
        "admin summary search (an invoice number) as a superuser": measure(
            admin_page("?q=INV-4250&status=all", found=11), rounds
        ),
        "API ?search= as a reviewer": measure(api_search(clients["queue-reviewer"]), rounds),
    }
    for name in rows:
        if "search" in name:
            SEARCHES.add(name)
        if name.startswith(("API", "admin")):
            TARGET_P95[name] = 0.1 if name in SEARCHES else 0.05
    limit = statistics.median(rows["raw SQL (count + first page): the limit"][0])
    lines = [
        f"## 4. The queue at {TOTAL:,} checkpoints (10 pipelines, 20% pending, 10 KB contexts)",
        "",
        "`GET checkpoints/?status=pending&pipeline=p3` (first page of 50, oldest first), Django test client; "
        "the limit reads the columns a queue row shows (not the contexts). The searches look for a payee "
        f"({SEARCHED_PAYEE!r}: {TOTAL // PAYEES} checkpoints, all pending) in the titles and summaries, "
        "and for an invoice number in the summaries (11 matches under All); ratios of searches are to the "
        "list's limit, for scale.",
        "",
        "| request | median ms | p95 ms | p95 target ms | ratio to the limit | SQL queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (samples, queries) in rows.items():
        median, p95 = statistics.median(samples), percentile(samples, 0.95)
        MEASURED[name] = (median, p95, median / limit, queries)
        target = f"{TARGET_P95[name] * 1e3:.0f}" if name in TARGET_P95 else ""
        lines.append(f"| {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | {target} | {median / limit:.2f} | {queries} |")
    return [*lines, ""]


def main() -> None:
    """The queue scenario alone, on its own database: ``python benchmarks/queue_bench.py``."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepkit_bench")
    server, name = url.rsplit("/", 1)
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print("\n".join(scenario_queue(quick=os.environ.get("BENCH_QUICK") == "1")))
    for request, (_median, p95, _ratio, _queries) in MEASURED.items():
        if request in TARGET_P95:
            verdict = "met" if p95 < TARGET_P95[request] else "MISSED"
            print(f"p95 < {TARGET_P95[request] * 1e3:.0f} ms {verdict}: {request} ({p95 * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
