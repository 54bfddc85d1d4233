"""Per-step overhead of the engine: ``python benchmarks/engine.py`` (or ``make bench-engine``).

A 20-step pipeline of trivial steps, run with a 100-byte context and with 100 KB
contexts (one long string; 1,000 small records), with and without a handler that
reads ``event.checkpoint``. Prints the median time per step over many runs and
the overhead over calling the same 20 functions in a plain loop.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        SECRET_KEY=os.environ.get("SECRET_KEY", "benchmark-key"),
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "stepkit_django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()

from stepkit_django import StepCompleteEvent, stepkit

STEPS = 20


def trivial(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"n": ctx["n"] + 1}


def build() -> Any:
    p = stepkit("bench")
    for i in range(STEPS):
        p = p.step(f"s{i}", trivial)
    return p


CONTEXTS: dict[str, dict[str, Any]] = {
    "100 B": {"n": 0, "note": "x" * 80},
    "100 KB, one string": {"n": 0, "text": "x" * 100_000},
    "100 KB, 1,000 records": {
        "n": 0,
        "rows": [
            {"id": i, "name": f"customer {i:05d}", "email": f"c{i:05d}@example.com", "ok": True} for i in range(1000)
        ],
    },
}


def read_checkpoint(event: StepCompleteEvent) -> None:
    _ = event.checkpoint


def median_seconds(fn: Callable[[], Any], budget: float = 1.5, min_runs: int = 15) -> float:
    for _ in range(3):  # warm-up
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < min_runs or time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
        if len(samples) >= 5000:
            break
    return statistics.median(samples)


def plain_loop(ctx: dict[str, Any]) -> dict[str, Any]:
    for _ in range(STEPS):
        ctx = {**ctx, **trivial(ctx)}
    return ctx


def main() -> None:
    pipeline = build()
    print(f"stepkit_django engine benchmark: {STEPS} trivial steps, median of repeated runs")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"Python {platform.python_version()}, Django {django.get_version()}, {machine}")
    print()
    header = (
        f"{'context':<24}{'checkpoint read':>16}{'µs / step':>12}{'plain loop µs / step':>22}{'overhead µs / step':>20}"
    )
    print(header)
    print("-" * len(header))
    for label, ctx in CONTEXTS.items():
        loop = median_seconds(partial(plain_loop, ctx)) / STEPS * 1e6
        for reads in (False, True):
            config = {"on_step_complete": read_checkpoint} if reads else {}
            per_step = median_seconds(partial(pipeline.run, ctx, **config)) / STEPS * 1e6
            print(f"{label:<24}{'yes' if reads else 'no':>16}{per_step:>12.1f}{loop:>22.2f}{per_step - loop:>20.1f}")
    print()
    print("Target: under 30 µs per step for the 100 B context without checkpoints.")


if __name__ == "__main__":
    main()
