"""The audit trail's hash chain, its cost per step: ``python benchmarks/chain_cost.py``.

Runs of the bench's 20-step pipeline alternate, in one process, on one connection and one database,
between the per-step writes as they are (events chained) and the same writes without the chain (the
statements the app sent before it had one), so the machine's load weighs on both alike: a shared
machine's noise is larger than the cost, which a side-by-side of two checkouts cannot resolve.
Prints, per durability and context size, the medians of both, of their paired differences, and of the
process's own CPU time per step. ``CHAIN_ROUNDS`` sets the number of pairs (40).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.core.management import call_command
from django.test.utils import override_settings

from benchmarks import bench, peers
from stepkit_django import runs
from stepkit_django.audit import EVENT_FIELDS
from stepkit_django.execution import _sql as sql
from stepkit_django.execution import progress, runner
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.status import RunStatus
from stepkit_django.transitions import check_run

Writes = dict[str, Callable[..., Any]]


def save_run_unchained(
    run: PipelineRun,
    owner: str,
    values: Mapping[str, Any],
    rows: list[tuple[Any, ...]],
    *,
    merge: bool = False,
    status: str = RunStatus.RUNNING,
    target: str | None = None,
) -> bool:
    """``progress.save_run`` without the chain: the same UPDATE and INSERT, the events without links."""
    merged = ("context",) if merge else ()
    fields = dict(values) if target is None else {"status": target, **values}
    if target is not None:
        check_run(status, target)
    saving = sql.Update(PipelineRun, run.pk, fields, {"status": status, "lease_owner": owner}, merge=merged)
    return sql.write([saving], [sql.Insert(AuditEvent, EVENT_FIELDS, rows)]) is None


def insert_run_unchained(run: PipelineRun, started: AuditEvent) -> None:
    """``progress.insert_run`` without the chain."""
    sql.write([], [sql.Insert.of([run]), sql.Insert.of([started])])
    run._state.adding, run._state.db = False, sql.alias()


CHAINED: Writes = {"save_run": progress.save_run, "insert_run": progress.insert_run}
UNCHAINED: Writes = {"save_run": save_run_unchained, "insert_run": insert_run_unchained}


def use(writes: Writes) -> None:
    """Make the runner and ``start()`` write with ``writes`` (the names they imported, too)."""
    for module in (progress, runner):
        setattr(module, "save_run", writes["save_run"])  # noqa: B010
    for module in (progress, runs):
        setattr(module, "insert_run", writes["insert_run"])  # noqa: B010


def main() -> None:
    call_command("migrate", verbosity=0)
    rounds = int(os.environ.get("CHAIN_ROUNDS", "40"))
    with override_settings(STEPKIT={"EXECUTOR": "inline"}):
        for durability in ("step", "pause"):
            ours = peers.Ours(durability=durability)
            for label, size in (("1 KB", 1_000), ("100 KB", 100_000)):
                ctx = bench.context_of(size)
                wall: dict[str, list[float]] = {"chained": [], "unchained": []}
                cpu: dict[str, list[float]] = {"chained": [], "unchained": []}
                for writes in (CHAINED, UNCHAINED):  # warm-up
                    use(writes)
                    ours.run(ctx)
                for i in range(rounds):
                    for name in ("chained", "unchained") if i % 2 == 0 else ("unchained", "chained"):
                        use(CHAINED if name == "chained" else UNCHAINED)
                        began, cpu_began = time.perf_counter(), time.process_time()
                        ours.run(ctx)
                        wall[name].append((time.perf_counter() - began) / peers.STEPS * 1e6)
                        cpu[name].append((time.process_time() - cpu_began) / peers.STEPS * 1e6)
                use(CHAINED)
                chained, unchained = statistics.median(wall["chained"]), statistics.median(wall["unchained"])
                paired = statistics.median(c - u for c, u in zip(wall["chained"], wall["unchained"], strict=True))
                spent = statistics.median(cpu["chained"]) - statistics.median(cpu["unchained"])
                print(
                    f'durability="{durability}", {label}: {chained:,.0f} µs per step chained, {unchained:,.0f} '
                    f"without the chain; paired difference {paired:+,.1f} µs ({paired / unchained:+.1%}); "
                    f"this process's CPU {spent:+,.1f} µs per step "
                    f"({spent / statistics.median(cpu['unchained']):+.1%} of its own)"
                )


if __name__ == "__main__":
    main()
