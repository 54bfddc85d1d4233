"""Side-by-side benchmarks: ``make bench`` (``python benchmarks/bench.py``).

Prints a table and writes it to benchmarks/results.md with the machine, versions
and date. Systems run in alternation, several rounds after a warm-up, on one
PostgreSQL server; each result is a median with its ratio to the limit.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
DATABASE_URL = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepkit_bench")
SERVER = DATABASE_URL.rsplit("/", 1)[0]
LIMIT_URL = DATABASE_URL.replace("postgres://", "postgresql://")
DBOS_URL = f"{SERVER.replace('postgres://', 'postgresql://')}/stepkit_bench_dbos"
QUICK = os.environ.get("BENCH_QUICK") == "1"


def ensure_databases() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        for name in ("stepkit_bench", "stepkit_bench_dbos"):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')


ensure_databases()
os.environ.setdefault("DBOS__LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from benchmarks import peers  # noqa: E402


def context_of(size: int) -> dict[str, Any]:
    """A context of about ``size`` bytes of JSON: a few records holding text, like drafts or documents."""
    records = max(1, size // 5000)
    text = "lorem ipsum dolor sit amet " * (size // records // 27)
    return {"n": 0, "items": [{"id": i, "title": f"item {i}", "text": text} for i in range(records)]}


def alternate(systems: list[Any], once: Callable[[Any], float], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(warmup):
        for system in systems:
            once(system)
    for r in range(rounds):
        order = systems[r % len(systems) :] + systems[: r % len(systems)]  # rotate who goes first
        for system in order:
            samples[system.name].append(once(system))
    return samples


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def table(title: str, unit: str, samples: dict[str, list[float]], limit_name: str, scale: float) -> list[str]:
    limit = statistics.median(samples[limit_name])
    lines = [f"### {title}", "", f"| system | median {unit} | ratio to the limit |", "| --- | ---: | ---: |"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median * scale:,.1f} | {median / limit:.2f} |")
    return [*lines, ""]


def scenario_durable(systems: list[Any]) -> list[str]:
    out = ["## 1. Durable step overhead (20 trivial steps, progress saved on PostgreSQL after each)", ""]
    for label, size, rounds in (("1 KB", 1_000, 15), ("100 KB", 100_000, 8)):
        ctx = context_of(size)
        samples = alternate(systems, lambda s, ctx=ctx: timed(lambda: s.run(ctx)) / peers.STEPS, 4 if QUICK else rounds)
        out += table(f"Context of {label}", "µs per step", samples, peers.Limit.name, 1e6)
    return out


def scenario_resume(systems: list[Any]) -> list[str]:
    def once(system: Any) -> float:
        token = system.prepare_pause()
        return timed(lambda: system.resume(token))

    samples = alternate(systems, once, 6 if QUICK else 30)
    return [
        "## 2. Pause and resume (approve, then the one remaining step, until the run is completed)",
        "",
        *table("Resume latency", "ms", samples, peers.Limit.name, 1e3),
    ]


def header() -> list[str]:
    packages = ", ".join(
        f"{p} {version(p)}" for p in ("django", "langgraph", "langgraph-checkpoint-postgres", "dbos", "psycopg")
    )
    import psycopg

    with psycopg.connect(LIMIT_URL) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    return [
        "# Benchmark results",
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by `make bench` on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"PostgreSQL {server} on 127.0.0.1; {packages}.",
        "",
        "Medians of several rounds after a warm-up, systems in alternation, one PostgreSQL server. "
        "Absolute times on a shared 2-core machine are noisy; compare the ratios.",
        "",
    ]


def main() -> None:
    call_command("migrate", verbosity=0)
    lines = header()
    with override_settings(STEPKIT={"EXECUTOR": "inline"}):
        ours, fast = peers.Ours(), peers.Ours(durability="pause")
        dbos = peers.Dbos(DBOS_URL)
        systems = [ours, fast, peers.LangGraph(LIMIT_URL), dbos, peers.Limit(LIMIT_URL)]
        try:
            lines += scenario_durable(systems)
            lines += scenario_resume(systems)
        finally:
            dbos.close()
    from benchmarks import queue_bench

    lines += queue_bench.scenario_queue(quick=QUICK)
    from benchmarks import load_bench

    lines += load_bench.scenario_decisions(quick=QUICK)
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
