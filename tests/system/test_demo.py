"""`make demo` as a new user runs it: migrate a fresh SQLite database, run the story."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, database):
    # The demo's emails beside its database, not in the checkout's demo-outbox/.
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "STEPKIT_DEMO_OUTBOX": str(database.parent / "outbox"),
    }
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


DEMO_START = """
from django.contrib.auth.models import User
from django.test import Client
from stepkit_django.models import PipelineRun

client = Client(HTTP_HOST="localhost")
client.force_login(User.objects.get(username="requester"))
url = "/admin/stepkit_django/pipelinerun/pipelines/payment-approval/"
print("form", client.get(url).content.decode().count('name="input-'))
print("started", client.post(url, {"input-payee": "Initech", "input-amount": "42"}).status_code)
run = PipelineRun.objects.get(input__payee="Initech")
print("input", sorted(run.input.items()), run.status)
print("refused", client.post(url, {"input-payee": "Initrode", "input-amount": "0"}).status_code)
print("runs", PipelineRun.objects.filter(input__payee="Initrode").count())
"""


def test_the_demo_requester_starts_a_payment_from_the_admin_pipelines_page(tmp_path):
    database = tmp_path / "demo.sqlite3"
    assert run_manage("migrate", "--verbosity", "0", database=database).returncode == 0
    assert run_manage("stepkit_seed_demo", database=database).returncode == 0
    result = run_manage("shell", "--no-imports", "-c", DEMO_START, database=database)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "form 4",  # payee, amount, invoice, memo
        "started 302",
        "input [('amount', 42), ('payee', 'Initech')] queued",  # the demo's worker runs it
        "refused 200",
        "runs 0",
    ]


def test_seeded_demo_queue_tells_its_items_apart_by_title_and_summary(tmp_path):
    database = tmp_path / "demo.sqlite3"
    assert run_manage("migrate", "--verbosity", "0", database=database).returncode == 0
    seeded = run_manage("stepkit_seed_demo", database=database)
    assert seeded.returncode == 0, seeded.stderr
    worker = run_manage("db_worker", "--batch", database=database)
    assert worker.returncode == 0, worker.stderr
    listing = (
        "from stepkit_django.models import Checkpoint\n"
        "for cp in Checkpoint.objects.order_by('created_at'):\n"
        "    print(cp.pipeline_name, '|', cp.title, '|', sorted(cp.summary.items()))\n"
    )
    result = run_manage("shell", "--verbosity", "0", "-c", listing, database=database)
    assert result.returncode == 0, result.stderr
    items = [line.split(" | ") for line in result.stdout.splitlines() if " | " in line]
    assert {pipeline for pipeline, _title, _summary in items} == {
        "email-approval",
        "payment-approval",
        "content-moderation",
        "support-reply",
        "config-change",
    }
    payments = [(title, summary) for pipeline, title, summary in items if pipeline == "payment-approval"]
    assert [title for title, _summary in payments] == [
        "Pay Globex 12,500 EUR",
        "Pay Globex 12,500 EUR",
        "Pay Stark Industries 4,800 EUR",
    ]
    assert len({summary for _title, summary in payments}) == 3  # same payee and amount, told apart by the summary
    assert "Reply to Ada Lovelace: Re: My invoice shows the wrong amount." in [title for _p, title, _s in items]


def test_the_seeded_demo_emails_its_reviewers_into_the_outbox(tmp_path):
    database = tmp_path / "demo.sqlite3"
    assert run_manage("migrate", "--verbosity", "0", database=database).returncode == 0
    seeded = run_manage("stepkit_seed_demo", database=database)
    assert seeded.returncode == 0, seeded.stderr
    assert f"written to {tmp_path / 'outbox'}/" in seeded.stdout
    worker = run_manage("db_worker", "--batch", database=database)  # advances the runs, then sends their emails
    assert worker.returncode == 0, worker.stderr
    emails = [path.read_text() for path in sorted((tmp_path / "outbox").glob("*.log"))]
    to_editor = [text for text in emails if "To: editor@stepkit.example" in text]
    assert any("Subject: Review requested: Reply to Ada Lovelace" in " ".join(text.split()) for text in to_editor)
    assert all("From: review@stepkit.example" in text for text in emails)
    # The demo mounts the inbox: the links open its review pages (Checkpoint.get_absolute_url)
    assert "http://127.0.0.1:8000/review/" in " ".join(to_editor).replace("=\n", "")
    assert any("To: writer@stepkit.example" in text for text in emails)  # the non-staff reviewer is told too
