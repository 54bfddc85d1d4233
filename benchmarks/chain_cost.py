"""The audit trail's hash chain, its cost per step: section 3 of ``make bench``, or alone
``python benchmarks/chain_cost.py``.

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

from benchmarks import bench, peers  # bench first: its import sets Django up
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


#: ``(durability, size label) -> (chained µs, unchained µs, paired difference µs, CPU difference µs)`` of the
#: last :func:`measure`, for the targets of ``make bench``.
MEASURED: dict[tuple[str, str], tuple[float, float, float, float]] = {}


def measure(context_of: Callable[[int], dict[str, Any]], rounds: int) -> None:
    """Fill :data:`MEASURED`: ``rounds`` pairs of runs per durability and context size (call it with the
    inline executor)."""
    for durability in ("step", "pause"):
        ours = peers.Ours(durability=durability)
        for label, size in (("1 KB", 1_000), ("100 KB", 100_000)):
            ctx = context_of(size)
            wall: dict[str, list[float]] = {"chained": [], "unchained": []}
            cpu: dict[str, list[float]] = {"chained": [], "unchained": []}
            for writes in (CHAINED, UNCHAINED):  # warm-up
                use(writes)
                ours.run(ctx)
            try:
                for i in range(rounds):
                    for name in ("chained", "unchained") if i % 2 == 0 else ("unchained", "chained"):
                        use(CHAINED if name == "chained" else UNCHAINED)
                        began, cpu_began = time.perf_counter(), time.process_time()
                        ours.run(ctx)
                        wall[name].append((time.perf_counter() - began) / peers.STEPS * 1e6)
                        cpu[name].append((time.process_time() - cpu_began) / peers.STEPS * 1e6)
            finally:
                use(CHAINED)
            MEASURED[(durability, label)] = (
                statistics.median(wall["chained"]),
                statistics.median(wall["unchained"]),
                statistics.median(c - u for c, u in zip(wall["chained"], wall["unchained"], strict=True)),
                statistics.median(cpu["chained"]) - statistics.median(cpu["unchained"]),
            )


def scenario_chain(context_of: Callable[[int], dict[str, Any]], quick: bool = False) -> list[str]:
    """Section 3 of ``make bench``: the chain's cost per step, paired in one process."""
    measure(context_of, 6 if quick else int(os.environ.get("CHAIN_ROUNDS", "40")))
    lines = [
        "## 3. The audit trail's hash chain: its cost per step",
        "",
        "Runs of the 20-step pipeline alternate in one process, on one connection, between the per-step writes "
        "as they are (each event chained to the one before it, the run's head moved on condition) and the same "
        "writes without the chain (`benchmarks/chain_cost.py`), so that the machine's load weighs on both alike. "
        "The paired difference is the median of the differences of consecutive pairs.",
        "",
        "| durability | context | µs per step, chained | without the chain | paired difference | of the step "
        "| this process's CPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (durability, label), (chained, unchained, paired, spent) in MEASURED.items():
        lines.append(
            f'| "{durability}" | {label} | {chained:,.0f} | {unchained:,.0f} | {paired:+,.1f} µs '
            f"| {paired / unchained:+.1%} | {spent:+,.1f} µs |"
        )
    return [*lines, ""]


def main() -> None:
    call_command("migrate", verbosity=0)
    with override_settings(STEPKIT={"EXECUTOR": "inline"}):
        print("\n".join(scenario_chain(bench.context_of, quick=bench.QUICK)))


if __name__ == "__main__":
    main()
