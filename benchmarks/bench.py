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
from benchmarks.queue_bench import in_statements, statements  # noqa: E402


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


#: (scenario, system) -> ratio to the limit, for the targets table
RATIOS: dict[tuple[str, str], float] = {}
#: (scenario, system) -> median seconds
MEDIANS: dict[tuple[str, str], float] = {}
#: SQL statements per operation as Django logs them (transaction markers included where it logs them)
STATEMENTS: dict[str, float] = {}
#: (seconds per operation, of which inside SQL statements), for the evidence of missed targets
INSIDE: dict[str, tuple[float, float]] = {}


def table(title: str, unit: str, samples: dict[str, list[float]], limit_name: str, scale: float) -> list[str]:
    limit = statistics.median(samples[limit_name])
    for name, values in samples.items():
        RATIOS[(title, name)] = statistics.median(values) / limit
        MEDIANS[(title, name)] = statistics.median(values)
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
    ours, fast = systems[0], systems[1]
    ctx = context_of(1_000)
    STATEMENTS["step"] = statements(lambda: ours.run(ctx)) / peers.STEPS
    STATEMENTS["step-pause"] = statements(lambda: fast.run(ctx)) / peers.STEPS
    INSIDE["step"] = split(lambda: ours.run(ctx), 4 if QUICK else 15, per=peers.STEPS)
    total, inside = INSIDE["step"]
    out += [
        f"SQL statements per step sent by this app (start and end of the run spread over the 20 steps): "
        f"{STATEMENTS['step']:.2f}, with " + '`durability="pause"`' + f" {STATEMENTS['step-pause']:.2f}; "
        "the limit sends one UPDATE per step (and its COMMIT). At 1 KB, of this app's "
        f"{total * 1e6:,.0f} µs per step, {inside * 1e6:,.0f} µs are spent inside its statements (Django's cursor "
        f"and the database) and {(total - inside) * 1e6:,.0f} µs in Python (the engine, the changed keys, the "
        "statement's parameters).",
        "",
    ]
    return out


def split(fn: Callable[[], Any], rounds: int, per: int = 1) -> tuple[float, float]:
    """Medians of ``(seconds of fn(), seconds inside its statements)``, divided by ``per``."""
    samples = [in_statements(fn) for _ in range(rounds)]
    return statistics.median(t for t, _ in samples) / per, statistics.median(i for _, i in samples) / per


def scenario_resume(systems: list[Any]) -> list[str]:
    def once(system: Any) -> float:
        token = system.prepare_pause()
        return timed(lambda: system.resume(token))

    samples = alternate(systems, once, 6 if QUICK else 30)
    ours = systems[0]
    checkpoint = ours.prepare_pause()
    STATEMENTS["resume"] = statements(lambda: ours.resume(checkpoint))
    checkpoints = iter([ours.prepare_pause() for _ in range(6 if QUICK else 30)])
    INSIDE["resume"] = split(lambda: ours.resume(next(checkpoints)), 6 if QUICK else 30)
    total, inside = INSIDE["resume"]
    return [
        "## 2. Pause and resume (approve, then the one remaining step, until the run is completed)",
        "",
        *table("Resume latency", "ms", samples, peers.Limit.name, 1e3),
        f"SQL statements from the approve call to the completed run, this app: {STATEMENTS['resume']:.0f}; "
        f"the limit: 2 (an UPDATE, a SELECT). Of this app's {total * 1e3:.1f} ms, {inside * 1e3:.1f} ms are spent "
        f"inside its statements and {(total - inside) * 1e3:.1f} ms outside them (the reviewer's checks, the "
        "signed checkpoint, the audit events and the statements' parameters, the engine running the step, the "
        "signals).",
        "",
    ]


def targets(
    queue: dict[str, tuple[float, float, float, int]],
    load: dict[str, float],
    decision: dict[str, float],
    chain: dict[tuple[str, str], tuple[float, float, float, float]],
) -> list[str]:
    """Each target of the benchmark issue against what was just measured."""
    ours, fast = peers.Ours().name, peers.Ours(durability="pause").name
    one, hundred = "Context of 1 KB", "Context of 100 KB"

    def faster(title: str, name: str) -> bool:
        return all(RATIOS[(title, name)] < RATIOS[(title, peer)] for peer in (peers.LangGraph.name, peers.Dbos.name))

    rows = [
        ("Durable step ≤ 1.5× the limit at 1 KB", ours, RATIOS[(one, ours)] <= 1.5, f"{RATIOS[(one, ours)]:.2f}×"),
        ('  the same with durability="pause"', fast, RATIOS[(one, fast)] <= 1.5, f"{RATIOS[(one, fast)]:.2f}×"),
        (
            "Durable step ≤ 2× the limit at 100 KB",
            ours,
            RATIOS[(hundred, ours)] <= 2,
            f"{RATIOS[(hundred, ours)]:.2f}×",
        ),
        ('  the same with durability="pause"', fast, RATIOS[(hundred, fast)] <= 2, f"{RATIOS[(hundred, fast)]:.2f}×"),
        ("Faster than LangGraph and DBOS at 1 KB", ours, faster(one, ours), ""),
        ("Faster than LangGraph and DBOS at 100 KB", ours, faster(hundred, ours), ""),
        ('  the same with durability="pause" (1 KB, 100 KB)', fast, faster(one, fast) and faster(hundred, fast), ""),
        (
            "Resume ≤ 3× the limit",
            ours,
            RATIOS[("Resume latency", ours)] <= 3,
            f"{RATIOS[('Resume latency', ours)]:.1f}×",
        ),
    ]
    for (durability, label), (_chained, unchained, paired, _cpu) in chain.items():
        share = paired / unchained
        rows.append(
            (f'Audit chain < 10% of the step (durability="{durability}", {label})', "", share < 0.1, f"{share:+.1%}")
        )
    from benchmarks.queue_bench import SEARCHES, TARGET_P95

    for name, (_median, p95, _ratio, _queries) in queue.items():
        if name in TARGET_P95:
            target = TARGET_P95[name]
            rows.append((f"Queue p95 < {target * 1e3:.0f} ms: {name}", "", p95 < target, f"{p95 * 1e3:.0f} ms"))
    for name, (_median, _p95, ratio, queries) in queue.items():
        if name in TARGET_P95 and name not in SEARCHES:
            rows.append((f"Queue ≤ 3× raw SQL: {name}", "", ratio <= 3, f"{ratio:.2f}× ({queries} queries)"))
    share = load["api"] / load["bare"]
    rows.append(("Approvals/s ≥ 50% of the bare view", "", share >= 0.5, f"{share:.0%}"))
    p95 = decision["p95"]
    rows.append(("API approval p95 < 50 ms at 100,000 checkpoints", "", p95 < 0.05, f"{p95 * 1e3:.1f} ms"))
    lines = ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
    lines += [f"| {target} | {'yes' if ok else 'no'} | {value} |" for target, _who, ok, value in rows]
    return [*lines, "", *evidence(queue, load)]


def evidence(queue: dict[str, tuple[float, float, float, int]], load: dict[str, float]) -> list[str]:
    """Why the targets that are missed are, from the numbers of this run."""
    floor_list = queue["the same raw SQL behind a DRF view (the framework's floor)"]
    api_list = queue["API list as a superuser"]
    admin_list = queue["admin changelist as a superuser"]
    pause_1k = RATIOS[("Context of 1 KB", peers.Ours(durability="pause").name)]
    pause_100k = RATIOS[("Context of 100 KB", peers.Ours(durability="pause").name)]
    prepared_1k = RATIOS[("Context of 1 KB", peers.Ours(prepared=True).name)]
    from benchmarks.queue_bench import TARGET_P95

    p95s = {name: row[1] for name, row in queue.items() if name in TARGET_P95}
    slow = [f"{name} ({p95 * 1e3:.0f} ms)" for name, p95 in p95s.items() if p95 >= TARGET_P95[name]]
    p95_verdict = (
        "met by the API lists, the admin changelists and the searches (< 100 ms)"
        if not slow
        else "missed by " + ", ".join(slow)
    )
    step_total, step_inside = INSIDE["step"]
    resume_total, resume_inside = INSIDE["resume"]
    limit_step = MEDIANS[("Context of 1 KB", peers.Limit.name)]
    limit_resume = MEDIANS[("Resume latency", peers.Limit.name)]
    return [
        "## The missed targets: what stands in the way",
        "",
        f"- **Durable step, step mode.** On PostgreSQL a step is one statement, as in the limit "
        f"({STATEMENTS['step']:.2f} per step here with the run's start and end spread over the 20 steps), but that "
        "statement also inserts the step's audit event (a row and its indexes), and it goes through Django's "
        f"cursor: {step_inside * 1e6:,.0f} µs per step inside the statements against the limit's "
        f"{limit_step * 1e6:,.0f} µs for its UPDATE and COMMIT, plus {(step_total - step_inside) * 1e6:,.0f} µs of "
        "Python around them. The event per step is what the audit trail promises, so this mode stays above the "
        "limit. The limit's psycopg connection prepares its UPDATE after five runs (psycopg's default) where "
        "Django's does not (`prepare_threshold` None); with the same setting this app's step is "
        f"{prepared_1k:.2f}× the limit. "
        'The issue\'s way out is `durability="pause"`: '
        f"{pause_1k:.2f}× of the limit at 1 KB ({'met' if pause_1k <= 1.5 else 'missed'}) and "
        f"{pause_100k:.2f}× at 100 KB ({'met' if pause_100k <= 2 else 'missed'}); at 1 KB the rest is the run's "
        "start and end spread over the 20 steps.",
        f"- **Resume ≤ 3×.** The limit is two statements; the approve call here reads the checkpoint and its run, "
        "checks the reviewer, and then, in a transaction through the ORM (so that model signals are sent), claims "
        "the run and the checkpoint with conditional UPDATEs, saves both, creates the approval and its audit "
        "events; the executor takes the run's lease, runs the last step and writes it with the run's completion "
        f"in one statement: {STATEMENTS['resume']:.0f} statements besides BEGIN and COMMIT. Those statements "
        "alone take "
        f"{resume_inside * 1e3:.1f} ms ({resume_inside / limit_resume:.1f}× the limit's whole "
        f"{limit_resume * 1e3:.1f} ms); the Python around them takes "
        f"{(resume_total - resume_inside) * 1e3:.1f} ms more. Each write backs a guarantee (exactly-once decision, "
        f"audit trail, lease), so 3× ({3 * limit_resume * 1e3:.1f} ms) is out of reach by design.",
        f"- **Approvals under load ≥ 50%.** The framework's floor — a DRF view with the API's token "
        f"authentication doing the same single UPDATE — reaches {load['floor'] / load['bare']:.0%} of the bare "
        f"view by itself; the full approval is {load['api'] / load['floor']:.0%} of that floor. In server time per "
        f"request (8 clients, 4 workers): the floor costs {1e3 / load['floor']:.2f} ms, 50% of the bare view "
        f"allows {2e3 / load['bare']:.2f} ms, which leaves {2e3 / load['bare'] - 1e3 / load['floor']:.2f} ms "
        "for everything an approval adds to one UPDATE: loading and checking the checkpoint, the decision's "
        "transaction through the ORM (the conditional updates and saves of the checkpoint and the run, the "
        "approval and the audit rows, with their model signals), the worker's task (an INSERT by django-tasks' "
        "database backend) and the answer's approvals; "
        f"those take {1e3 / load['api'] - 1e3 / load['floor']:.2f} ms here.",
        f"- **Queue list ≤ 3× raw SQL.** The limit's own SQL behind a DRF view with the same authentication and "
        f"JSON rendering takes {floor_list[0] * 1e3:.1f} ms ({floor_list[2]:.1f}× the raw SQL); the API list takes "
        f"{api_list[0] * 1e3:.1f} ms, {api_list[0] / floor_list[0]:.1f}× that floor. The p95 targets "
        f"(< 50 ms for a list, < 100 ms for a search) are {p95_verdict}. With the request cycle alone at "
        f"{floor_list[2]:.1f}× the raw SQL, 3× leaves "
        f"{max(0.0, 3 - floor_list[2]):.1f}× for building the filtered query and its rows, which take "
        f"{api_list[2] - floor_list[2]:.1f}× here. The admin changelist takes {admin_list[0] * 1e3:.1f} ms "
        f"({admin_list[2]:.1f}× the raw SQL, {admin_list[3]} queries): the admin renders its 50 rows through "
        "Django's templates (a cell at a time).",
        "",
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
        ours, fast, prepared = peers.Ours(), peers.Ours(durability="pause"), peers.Ours(prepared=True)
        dbos = peers.Dbos(DBOS_URL)
        systems = [ours, fast, prepared, peers.LangGraph(LIMIT_URL), dbos, peers.Limit(LIMIT_URL)]
        try:
            lines += scenario_durable(systems)
            lines += scenario_resume(systems)
            from benchmarks import chain_cost

            lines += chain_cost.scenario_chain(context_of, quick=QUICK)
        finally:
            dbos.close()
    from benchmarks import queue_bench

    lines += queue_bench.scenario_queue(quick=QUICK)
    from benchmarks import load_bench

    lines += load_bench.scenario_decisions(quick=QUICK)
    from benchmarks import decision_bench

    lines += decision_bench.scenario_approval(quick=QUICK)
    from benchmarks import scale

    lines += scale.run_section(quick=QUICK)  # in a subprocess: it has its own database
    lines += targets(queue_bench.MEASURED, load_bench.MEASURED, decision_bench.MEASURED, chain_cost.MEASURED)
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
