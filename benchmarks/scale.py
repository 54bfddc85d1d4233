"""Scenario 6: a million-row queue (1,000,000 checkpoints, 10,000,000 audit events) on PostgreSQL.

``make bench-scale`` (``python benchmarks/scale.py``) runs it alone and rewrites its section of
benchmarks/results.md; ``make bench`` runs it in a subprocess (it has its own database) and puts the
same section in the file it writes. The database, ``stepkit_scale`` on the local server
(``SCALE_DATABASE_URL``), is seeded once by :mod:`benchmarks.scale_seed` and kept between runs;
``BENCH_QUICK=1`` takes fewer samples.

Each request goes through Django's test client in this process, logged in as the user a queue page
serves: the reviewer ``scale-reviewer`` (the review permission, a member of ``scale-editors``; 90% of
the checkpoints are theirs to see: those assigned to nobody, to them, or to their group), the
reassigner ``scale-reassigner`` (the same, with the reassign permission: their queue adds the orphans,
assigned checkpoints with no assignee left, which the summary of pending counts cannot tell apart), or
the run manager ``scale-manager`` for the audit trail, which a manager reads whole. The purge batch is
measured in a transaction that is rolled back, so every run measures the same 500 runs and leaves the
database as it was.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
HEADING = "## 7. A million-row queue"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/stepkit_scale"
JIT = os.environ.get("SCALE_JIT", "off") == "on"
#: A payee whose 50 checkpoints are all pending and assigned to the reviewer's group: a full page.
SEARCHED = "Supplier 01230"
#: request -> its p95 target in seconds (the issue's: lists 50 ms, a search 100 ms, the overview 200 ms)
TARGETS: dict[str, float | None] = {}
#: request -> (median s, p95 s, SQL statements)
MEASURED: dict[str, tuple[float, float, int]] = {}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def statements(fn: Callable[[], Any]) -> int:
    from django.db import connection

    executed: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        fn()
    return len(executed)


def measure(fn: Callable[[], Any], rounds: int, warmup: int = 3) -> tuple[list[float], int]:
    for _ in range(warmup):
        fn()
    queries = statements(fn)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples, queries


def _clients() -> dict[str, Any]:
    from django.contrib.auth.models import Group, Permission, User
    from django.test import Client

    User.objects.get_or_create(username="scale-admin", defaults={"is_superuser": True, "is_staff": True})
    # The reviewer's rights and group, and the reassign permission: made here, the seed does not depend on it.
    reassigner, _ = User.objects.get_or_create(username="scale-reassigner", defaults={"is_staff": True})
    reassigner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="stepkit_django", codename__in=["review_checkpoint", "reassign_checkpoint"]
        )
    )
    reassigner.groups.add(Group.objects.get(name="scale-editors"))
    clients = {}
    for name in ("scale-reviewer", "scale-reassigner", "scale-manager", "scale-admin"):
        client = Client()
        client.force_login(User.objects.get(username=name))
        clients[name] = client
    return clients


def _get(client: Any, url: str, check: Callable[[Any], bool]) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(url)
        assert response.status_code == 200 and check(response), (url, response.status_code)
        return response

    return call


def _rows(found: int) -> Callable[[Any], bool]:
    return lambda response: response.content.count(b'<td class="action-checkbox">') == found


def _results(found: int) -> Callable[[Any], bool]:
    return lambda response: len(response.json()["results"]) == found


def _purge_batch(batch: int) -> Callable[[], Any]:
    """One batch of ``retention.purge``: the ``batch`` runs that ended first, in a rolled-back transaction."""
    from django.db import connection, transaction

    from stepkit_django import retention
    from stepkit_django.models import PipelineRun
    from stepkit_django.status import RunStatus

    # Each rolled-back batch leaves dead row versions of the same rows, which the next batch must skip:
    # a vacuum first, so that every bench run starts from the same tables (autovacuum would, later).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM stepkit_django_auditevent, stepkit_django_pipelinerun, stepkit_django_checkpoint")
    ended = PipelineRun.objects.filter(status__in=RunStatus.finished(), purged_at__isnull=True)
    # The cutoff just after the batch-th run to end: purge() then finds exactly one batch.
    last = ended.order_by("finished_at", "pk").values_list("finished_at", flat=True)[batch - 1]
    cutoff = last + timedelta(microseconds=1)

    class Rollback(Exception):
        pass

    def call() -> None:
        try:
            with transaction.atomic():
                counts = retention.purge(cutoff, batch_size=batch)
                assert counts["runs"] == batch and counts["batches"] == 1, counts
                raise Rollback
        except Rollback:
            pass

    return call


def scenario(quick: bool = False) -> list[str]:
    """Seed (once), measure, and return the section of results.md."""
    from benchmarks.scale_seed import CHECKPOINTS, PAYEES, ensure_seeded

    started = time.perf_counter()
    seed = ensure_seeded(say=lambda line: print(line, file=sys.stderr))
    seed_note = (
        f"seeded now in {seed['seconds']:.0f} s"
        if seed["now"]
        else f"seeded on {seed['seeded_at']:%Y-%m-%d %H:%M} UTC in {seed['seconds']:.0f} s, kept since"
    )
    rounds = 10 if quick else 40
    clients = _clients()
    reviewer, manager = clients["scale-reviewer"], clients["scale-manager"]
    reassigner = clients["scale-reassigner"]
    page = 50
    found = min(page, max(1, CHECKPOINTS // PAYEES))  # the searched payee's checkpoints
    first_events = _get(manager, "/api/stepkit/events/", _results(page))
    following = first_events().json()["next"]
    requests: dict[str, tuple[Callable[[], Any], float | None]] = {
        "API `GET checkpoints/?status=pending` as a reviewer": (
            _get(reviewer, "/api/stepkit/checkpoints/?status=pending", _results(page)),
            0.05,
        ),
        "admin changelist as a reviewer (default filters: pending, oldest first)": (
            _get(reviewer, "/admin/stepkit_django/checkpoint/", _rows(page)),
            0.05,
        ),
        "API `GET checkpoints/?status=pending` as a reassigner (their queue adds the orphans)": (
            _get(reassigner, "/api/stepkit/checkpoints/?status=pending", _results(page)),
            0.05,
        ),
        "admin changelist as a reassigner (default filters)": (
            _get(reassigner, "/admin/stepkit_django/checkpoint/", _rows(page)),
            0.05,
        ),
        "admin title search as a reviewer": (
            _get(reviewer, f"/admin/stepkit_django/checkpoint/?q={SEARCHED.replace(' ', '+')}", _rows(found)),
            0.1,
        ),
        "API `?search=` as a reviewer": (
            _get(reviewer, f"/api/stepkit/checkpoints/?search={SEARCHED.replace(' ', '+')}", _results(found)),
            0.1,
        ),
        "queue overview as a reviewer": (
            _get(reviewer, "/admin/stepkit_django/checkpoint/overview/", lambda r: b"<svg" in r.content),
            0.2,
        ),
        "queue overview as a superuser (no visibility rule: for comparison)": (
            _get(clients["scale-admin"], "/admin/stepkit_django/checkpoint/overview/", lambda r: b"<svg" in r.content),
            None,
        ),
        "admin changelist as a superuser (for comparison)": (
            _get(clients["scale-admin"], "/admin/stepkit_django/checkpoint/", _rows(page)),
            None,
        ),
        "API `GET events/` as a run manager (first page)": (first_events, 0.05),
        "API `GET events/` as a run manager (the next page, by its cursor)": (
            _get(manager, following, _results(page)),
            0.05,
        ),
        "API `GET events/` as a reviewer (first page)": (
            _get(reviewer, "/api/stepkit/events/", _results(page)),
            0.05,
        ),
        "a purge batch of 500 runs (5,000 events redacted, 500 written), rolled back": (_purge_batch(500), None),
    }
    skipped = [part for part in os.environ.get("SCALE_SKIP", "").split(",") if part]
    for name, (fn, target) in requests.items():
        if any(part in name for part in skipped):
            continue
        samples, queries = measure(fn, max(5, rounds // 4), warmup=1) if "purge" in name else measure(fn, rounds)
        MEASURED[name] = (statistics.median(samples), percentile(samples, 0.95), queries)
        TARGETS[name] = target
        median, p95 = MEASURED[name][0] * 1e3, MEASURED[name][1] * 1e3
        print(f"  {name}: median {median:.1f} ms, p95 {p95:.1f} ms", file=sys.stderr)
    lines = [
        f"{HEADING} ({CHECKPOINTS:,} checkpoints, {seed['events']:,} audit events)",
        "",
        f"`python benchmarks/scale.py` (`make bench-scale`), Django's test client in process, on the database "
        f"`stepkit_scale` ({seed_note}; `generate_series` in SQL, then `VACUUM ANALYZE`), PostgreSQL's JIT "
        f"{'on (the server default)' if JIT else 'off (as advised below)'}. A run and a "
        "checkpoint per `i`, created over a year: a fifth pending, the rest decided within two days; half "
        "assigned to nobody, 30% to the reviewer's group, 10% to the reviewer, 10% to another group (of which "
        "a hundredth are orphans: no assignee left); ten audit "
        f"events per run. The reviewer may see 90% of the queue, the reassigner (their rights and the reassign "
        f"permission) the orphans too; the title search finds {SEARCHED!r} (50 "
        "pending items). The purge batch runs `retention.purge()` on the 500 runs that ended first, inside a "
        "transaction rolled back afterwards (the same rows each time, after a `VACUUM` of the tables it writes, "
        f"whose dead row versions each rolled-back batch adds to). {rounds} samples after a warm-up "
        f"({max(5, rounds // 4)} for the purge); measured in {time.perf_counter() - started:.0f} s.",
        "",
        "| request | median ms | p95 ms | p95 target ms | met | SQL statements |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, (median, p95, queries) in MEASURED.items():
        target = TARGETS[name]
        verdict = "" if target is None else ("yes" if p95 < target else "no")
        shown = "" if target is None else f"{target * 1e3:.0f}"
        lines.append(f"| {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | {shown} | {verdict} | {queries} |")
    return [*lines, ""]


def replace_section(text: str, section: list[str]) -> str:
    """``text`` (results.md) with its scale section replaced by ``section``, or ``section`` inserted before
    the targets (or at the end)."""
    lines = text.rstrip("\n").split("\n")
    start = next((n for n, line in enumerate(lines) if line.startswith(HEADING)), None)
    if start is None:
        at = next((n for n, line in enumerate(lines) if line == "## Targets"), len(lines))
        lines[at:at] = section
    else:
        end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
        lines[start:end] = section
    return "\n".join(lines) + "\n"


def setup(url: str) -> None:
    """Django on the scale database (created if missing), migrated."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["DATABASE_URL"] = url
    server, name = url.rsplit("/", 1)
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
        # JIT off, as docs/explanation/performance.md advises for the app's connections (SCALE_JIT=on: the
        # server's default, to see what compiling costs these short queries).
        conn.execute(f'ALTER DATABASE "{name}" SET jit = {"on" if JIT else "off"}')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_section(quick: bool) -> list[str]:
    """The section, measured in a subprocess on the scale database (``make bench`` calls this)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--section-only"]
    env = {**os.environ, "BENCH_QUICK": "1" if quick else "0"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return [HEADING, "", f"The scale scenario failed (exit status {done.returncode}); see its output.", ""]
    return [*done.stdout.rstrip("\n").split("\n"), ""]


def main() -> None:
    setup(os.environ.get("SCALE_DATABASE_URL", DEFAULT_URL))
    section = scenario(quick=os.environ.get("BENCH_QUICK") == "1")
    if "--section-only" in sys.argv:
        print("\n".join(section))
        return
    print("\n".join(section))
    RESULTS.write_text(replace_section(RESULTS.read_text() if RESULTS.exists() else "", section))
    for name, (_median, p95, _queries) in MEASURED.items():
        target = TARGETS[name]
        if target is not None:
            print(f"p95 < {target * 1e3:.0f} ms {'met' if p95 < target else 'MISSED'}: {name} ({p95 * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
