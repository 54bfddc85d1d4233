"""Real processes for the tests: worker and server processes on the test database."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
TASKS = {"EXECUTOR": "tasks", "LEASE_SECONDS": 2.0}


def database_url() -> str:
    """The URL of the database the tests run on, for child processes."""
    s = connection.settings_dict
    auth = s.get("USER") or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def spawn(args: list[str], log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``args`` on the test database with the test settings; output goes to ``log_path``."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process
    return subprocess.Popen(args, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)


def db_worker(log_path: Path, worker_id: str, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    """A django-tasks-db worker with the ``tasks`` executor and 2-second leases."""
    args = [sys.executable, "-m", "django", "db_worker", "--interval", "0.1", "--no-startup-delay"]
    args += ["--no-reload", "--worker-id", worker_id, *extra]
    return spawn(args, log_path, STEPKIT_EXECUTOR="tasks", STEPKIT_LEASE_SECONDS="2", **env)


def stop(*processes: subprocess.Popen[Any]) -> None:
    """Terminate the processes, killing those that do not exit within 15 seconds."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], Any], timeout: float, message: str, logs: Iterable[Path] = ()) -> None:
    """Poll ``condition`` until true; fail the test with the tails of ``logs`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    details = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"Timed out after {timeout}s waiting for {message}\n{details}")
