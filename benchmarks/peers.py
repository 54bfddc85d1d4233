"""The systems the benchmarks compare: this app, LangGraph, DBOS and the raw-psycopg limit.

Each ``make_*`` returns an object with ``run(context)`` (scenario 1: 20 durable
steps) and ``prepare_pause()`` / ``resume(token)`` (scenario 2: pause after step 1,
then resume and run the last step). They all use the same PostgreSQL server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

STEPS = 20


class Ours:
    """This app with the inline executor; ``durability="pause"`` saves only at pauses, failures and the end.

    ``prepared`` runs it as with ``DATABASES[...]["OPTIONS"]["prepare_threshold"] = 5``
    (psycopg's own default, which Django turns off): PostgreSQL plans each of this
    app's statements once per connection.
    """

    def __init__(self, durability: str = "step", prepared: bool = False) -> None:
        from django.contrib.auth.models import User

        suffix = "" if durability == "step" else "-fast"
        self.name = "stepkit_django" + ("" if durability == "step" else ' (durability="pause")')
        self.name += " (prepare_threshold=5)" if prepared else ""
        self.prepared = prepared
        self.twenty, self.pausing = f"bench-twenty{suffix}", f"bench-pause{suffix}"
        self.reviewer, _ = User.objects.get_or_create(username="bench-reviewer", defaults={"is_superuser": True})

    @contextmanager
    def connection_options(self) -> Iterator[None]:
        from django.db import connection

        connection.ensure_connection()
        raw: Any = connection.connection
        before = raw.prepare_threshold
        raw.prepare_threshold = 5 if self.prepared else before
        try:
            yield
        finally:
            raw.prepare_threshold = before

    def run(self, context: dict[str, Any]) -> None:
        from stepkit_django import start

        with self.connection_options():
            run = start(self.twenty, context)
        assert run.status == "completed", run.error

    def prepare_pause(self) -> Any:
        from stepkit_django import start

        run = start(self.pausing, {"n": 0})
        return run.checkpoints.get()

    def resume(self, checkpoint: Any) -> None:
        from stepkit_django import review

        with self.connection_options():
            decided = review.approve(checkpoint, self.reviewer)
        assert decided.run.status == "completed"


class LangGraph:
    name = "LangGraph (PostgresSaver)"

    def __init__(self, url: str) -> None:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.graph import END, START, StateGraph
        from psycopg.rows import dict_row

        class State(TypedDict, total=False):
            n: int
            payload: Any

        self.conn = psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        saver = PostgresSaver(self.conn)
        saver.setup()

        def bump(state: State) -> dict[str, Any]:
            return {"n": state.get("n", 0) + 1}

        graph = StateGraph(State)
        previous = START
        for i in range(STEPS):
            graph.add_node(f"s{i}", bump)
            graph.add_edge(previous, f"s{i}")
            previous = f"s{i}"
        graph.add_edge(previous, END)
        self.graph = graph.compile(checkpointer=saver)

        from langgraph.types import interrupt

        def ask(state: State) -> dict[str, Any]:
            interrupt("approve?")  # pauses here; on resume returns the resume value
            return {}

        pausing = StateGraph(State)
        pausing.add_node("s1", bump)
        pausing.add_node("ask", ask)
        pausing.add_node("s2", bump)
        pausing.add_edge(START, "s1")
        pausing.add_edge("s1", "ask")
        pausing.add_edge("ask", "s2")
        pausing.add_edge("s2", END)
        self.pausing = pausing.compile(checkpointer=saver)

    def run(self, context: dict[str, Any]) -> None:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        out = self.graph.invoke(context, config, durability="sync")
        assert out["n"] == context["n"] + STEPS

    def prepare_pause(self) -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        self.pausing.invoke({"n": 0}, config, durability="sync")
        return config

    def resume(self, config: Any) -> None:
        from langgraph.types import Command

        out = self.pausing.invoke(Command(resume=True), config, durability="sync")
        assert out["n"] == 2


class Dbos:
    name = "DBOS"

    def __init__(self, url: str) -> None:
        from dbos import DBOS

        self.DBOS = DBOS

        @DBOS.step()
        def bump(n: int) -> int:
            return n + 1

        @DBOS.workflow()
        def twenty(context: dict[str, Any]) -> int:
            n = context["n"]
            for _ in range(STEPS):
                n = bump(n)
            return int(n)

        @DBOS.workflow()
        def pausing() -> int:
            n = bump(0)
            DBOS.recv("approve", timeout_seconds=60)
            return bump(n)

        self.twenty, self.pausing = twenty, pausing
        DBOS(config={"name": "stepkit-bench", "system_database_url": url})
        DBOS.launch()

    def run(self, context: dict[str, Any]) -> None:
        assert self.twenty(context) == context["n"] + STEPS

    def prepare_pause(self) -> Any:
        handle = self.DBOS.start_workflow(self.pausing)
        # wait until its first step is recorded; then it is (or is about to be) blocked in recv
        deadline = time.monotonic() + 10
        while not self.DBOS.list_workflow_steps(handle.workflow_id) and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02)
        return handle

    def resume(self, handle: Any) -> None:
        self.DBOS.send(handle.workflow_id, "ok", "approve")
        assert handle.get_result() == 2

    def close(self) -> None:
        self.DBOS.destroy()


class Limit:
    """The floor: one UPDATE of a row holding the context plus COMMIT per step."""

    name = "limit (raw psycopg)"

    def __init__(self, url: str) -> None:
        import psycopg

        # autocommit: each UPDATE is its own transaction, committed in the same round trip
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_limit (id uuid PRIMARY KEY, context jsonb NOT NULL)")

    def run(self, context: dict[str, Any]) -> None:
        run_id = uuid.uuid4()
        self.conn.execute("INSERT INTO bench_limit VALUES (%s, %s)", [run_id, json.dumps(context)])
        ctx = dict(context)
        for _ in range(STEPS):
            ctx["n"] += 1
            self.conn.execute("UPDATE bench_limit SET context = %s WHERE id = %s", [json.dumps(ctx), run_id])

    def prepare_pause(self) -> Any:
        run_id = uuid.uuid4()
        self.conn.execute("INSERT INTO bench_limit VALUES (%s, %s)", [run_id, json.dumps({"n": 1})])
        return run_id

    def resume(self, run_id: Any) -> None:
        # two round trips: the decision (UPDATE, committed) and reading the result
        self.conn.execute("UPDATE bench_limit SET context = %s WHERE id = %s", [json.dumps({"n": 2}), run_id])
        self.conn.execute("SELECT context FROM bench_limit WHERE id = %s", [run_id]).fetchone()
