"""Scenario 4: approvals per second through the API on a real server, versus a bare conditional UPDATE."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 8765
CLIENTS = 8
#: "api" and "bare" approvals per second, for the targets table
MEASURED: dict[str, float] = {}


def prepare(count: int) -> list[str]:
    """``count`` runs paused at a checkpoint (started inline), returned as checkpoint ids."""
    from django.contrib.auth.models import User
    from django.test.utils import override_settings

    from stepkit_django import start

    requester, _ = User.objects.get_or_create(username="load-requester")
    with override_settings(STEPKIT={"EXECUTOR": "inline"}):
        return [str(start("bench-decide", {"n": 0}, user=requester).checkpoints.get().pk) for _ in range(count)]


def hammer(paths: list[str], headers: dict[str, str]) -> tuple[float, int, int]:
    """POST every path from CLIENTS threads; return (seconds, successes, failures)."""
    chunks = [paths[i::CLIENTS] for i in range(CLIENTS)]
    outcomes = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def client(mine: list[str]) -> None:
        barrier.wait()
        ok = failed = 0
        for path in mine:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json", **headers})
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                ok += 1
            else:
                failed += 1
        with lock:
            outcomes["ok"] += ok
            outcomes["failed"] += failed

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, outcomes["ok"], outcomes["failed"]


def wait_for_server() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", "/api/stepkit/")
            conn.getresponse()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the benchmark server did not start")


def scenario_decisions(quick: bool = False) -> list[str]:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    per_round = 80 if quick else 300
    rounds = 1 if quick else 2
    reviewer, _ = User.objects.get_or_create(username="load-reviewer", defaults={"is_superuser": True})
    token, _ = Token.objects.get_or_create(user=reviewer)
    env = {**os.environ, "STEPKIT_BENCH_EXECUTOR": "tasks", "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.wsgi:application",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{PORT}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server()
        results: dict[str, list[float]] = {"API approve": [], "DRF floor": [], "bare conditional UPDATE": []}
        failures = 0
        for _ in range(rounds):
            for name in results:
                ids = prepare(per_round)
                if name == "API approve":
                    paths = [f"/api/stepkit/checkpoints/{pk}/approve/" for pk in ids]
                    headers = {"Authorization": f"Token {token.key}"}
                elif name == "DRF floor":
                    paths = [f"/drf/approve/{pk}/" for pk in ids]
                    headers = {"Authorization": f"Token {token.key}"}
                else:
                    paths = [f"/bare/approve/{pk}/" for pk in ids]
                    headers = {}
                seconds, ok, failed = hammer(paths, headers)
                failures += failed
                results[name].append(ok / seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    api, bare = max(results["API approve"]), max(results["bare conditional UPDATE"])
    floor = max(results["DRF floor"])
    MEASURED.update(api=api, bare=bare, floor=floor)
    return [
        "## 5. Decisions under load",
        "",
        f"{CLIENTS} concurrent clients POST approvals to gunicorn (4 sync workers) on 127.0.0.1; {per_round} "
        "checkpoints per round, best of the rounds. The API approval checks the reviewer, updates the checkpoint "
        "and the run, writes two audit events and enqueues the run for a worker (the `tasks` executor); the "
        "limit is a view that runs one conditional UPDATE.",
        "",
        "| endpoint | approvals / s | share of the limit |",
        "| --- | ---: | ---: |",
        f"| API `POST checkpoints/{{id}}/approve/` | {api:.1f} | {api / bare:.0%} |",
        f"| DRF view with the API's token authentication, one conditional UPDATE (the framework's floor) "
        f"| {floor:.1f} | {floor / bare:.0%} |",
        f"| bare view, one conditional UPDATE (the limit) | {bare:.1f} | 100% |",
        "",
        f"Failed requests: {failures}.",
        "",
    ]
