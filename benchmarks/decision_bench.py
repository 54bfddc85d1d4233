"""Scenario 5: one API approval at 100,000 checkpoints, in process: latency and SQL statements.

``python benchmarks/decision_bench.py`` runs it alone (old and new code can be run
in alternation from two checkouts against one database); ``make bench`` runs it
with the others. The approval goes through the whole API (token authentication,
``If-Match``, the reviewer's checks, the decision's transaction, the audit events)
and queues the run for a worker (the ``tasks`` executor), as in production.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: "median" and "p95" seconds of an API approval, for the targets table
MEASURED: dict[str, float] = {}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def scenario_approval(quick: bool = False) -> list[str]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from benchmarks import load_bench, queue_bench
    from stepkit_django.models import Checkpoint

    queue_bench.seed()
    approvals = 40 if quick else 200
    reviewer, _ = User.objects.get_or_create(username="decision-reviewer", defaults={"is_superuser": True})
    token, _ = Token.objects.get_or_create(user=reviewer)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    ids = load_bench.prepare(approvals + 5)
    total = Checkpoint.objects.count()

    def approve(pk: str) -> float:
        started = time.perf_counter()
        response = client.post(
            f"/api/stepkit/checkpoints/{pk}/approve/",
            data={},
            content_type="application/json",
            HTTP_IF_MATCH=f'"{pk}-1"',
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        return elapsed

    for pk in ids[:5]:  # warm-up
        approve(pk)
    sent: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        approve(ids[5])
    if os.environ.get("BENCH_SHOW_SQL"):
        print("\n".join(s[:150] for s in sent))
    samples = [approve(pk) for pk in ids[6:]]
    median, p95 = statistics.median(samples), percentile(samples, 0.95)
    MEASURED.update(median=median, p95=p95)
    return [
        f"## 6. One API approval at {total:,} checkpoints, in process",
        "",
        "`POST checkpoints/{id}/approve/` with `If-Match`, Django's test client, token authentication; "
        f"{len(samples)} approvals of paused runs, each queued for a worker afterwards (the `tasks` executor).",
        "",
        "| median ms | p95 ms | SQL statements |",
        "| ---: | ---: | ---: |",
        f"| {median * 1e3:.1f} | {p95 * 1e3:.1f} | {len(sent)} |",
        "",
    ]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepkit_bench")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import stepkit_django

    print(f"code: {Path(stepkit_django.__file__).parent}")
    print("\n".join(scenario_approval(quick=os.environ.get("BENCH_QUICK") == "1")))


if __name__ == "__main__":
    main()
