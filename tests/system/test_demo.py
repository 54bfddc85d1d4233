"""`make demo` as a new user runs it: migrate a fresh SQLite database, run the story."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, database):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_demo_approves_the_edited_email_and_prints_the_audit_trail(tmp_path):
    database = tmp_path / "demo.sqlite3"
    assert run_manage("migrate", "--verbosity", "0", database=database).returncode == 0
    result = run_manage("stepkit_demo", "--edit-body", "Hi Ada, fixed today.", database=database)
    assert result.returncode == 0, result.stderr
    assert "Approved: the run is completed. Sent to ada@example.com:" in result.stdout
    assert "Hi Ada, fixed today." in result.stdout
    for action in ("run_started", "paused", "claimed", "edited", "approved", "resumed", "run_completed"):
        assert action in result.stdout


def test_demo_rejection_sends_nothing(tmp_path):
    database = tmp_path / "demo.sqlite3"
    run_manage("migrate", "--verbosity", "0", database=database)
    result = run_manage("stepkit_demo", "--reject", database=database)
    assert result.returncode == 0, result.stderr
    assert "Rejected: the run is rejected; nothing was sent." in result.stdout
