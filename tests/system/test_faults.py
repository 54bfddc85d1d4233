"""Load with faults: 32 clients decide for 60 seconds while a worker is killed and PostgreSQL restarts.

Everything is real: a gunicorn server process and two db_worker processes on the
PostgreSQL test database, HTTP clients on 127.0.0.1, SIGKILL for the worker and
``pg_ctlcluster ... restart`` for the database. Notifications are on: every event is
posted to a webhook receiver on 127.0.0.1 (a thread of the test that checks the
signatures and counts the deliveries of each notification key). Afterwards the test
reconciles what the clients were told with what the database holds, and what the
receiver got with the notifications written, and prints the totals.

``STEPKIT_LOAD_SECONDS`` shortens the load phase while developing (default 60).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import close_old_connections, connection
from django.db.models import Count, Q
from django.test import override_settings
from rest_framework.authtoken.models import Token

from stepkit_django import start
from stepkit_django.execution.jobs import recover
from stepkit_django.models import AuditEvent, Checkpoint, Notification, PipelineRun
from stepkit_django.notifications import SIGNATURE_HEADER, verify_signature
from stepkit_django.notifications.delivery import deliver_due
from stepkit_django.notifications.events import notification_key
from stepkit_django.status import AuditAction, CheckpointStatus, NotificationEvent, NotificationStatus, RunStatus
from tests.processes import TASKS, db_worker, spawn, stop, wait_for
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 32
STARTERS = 4  # of the clients, these start runs; the others review
REVIEWERS = 8  # users in the editors group the reviewing clients log in as
SEEDED = 400  # runs paused at their checkpoint before the load begins
LOAD_SECONDS = float(os.environ.get("STEPKIT_LOAD_SECONDS", "60"))
KILL_WORKER_AT = 0.25  # fractions of the load phase
RESTART_DATABASE_AT = 0.5
GRACE = 5.0  # seconds after the database is back during which a 503 may still be answered
PIPELINE = "load-review"
API = "/api/stepkit"
NOTIFY_LEASE = 10.0  # seconds; longer than the webhook's timeout (5 s), so a live sender is never overtaken
WEBHOOK_SECRET = "test-webhook-secret"  # as tests/settings.py gives the processes


def postgres_cluster(port: int) -> tuple[str, str] | None:
    """(version, name) of the local cluster on ``port``, from pg_lsclusters."""
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        return None
    for line in subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    return None


class Webhooks:
    """A webhook receiver on 127.0.0.1, in a thread of the test: checks each request's signature and counts the
    deliveries of each notification (by its ``Idempotency-Key``)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.events: dict[str, str] = {}
        self.unsigned = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify_signature(WEBHOOK_SECRET, body, self.headers.get(SIGNATURE_HEADER))
                with receiver.lock:
                    if signed:
                        key = str(self.headers["Idempotency-Key"])
                        receiver.received[key] += 1
                        receiver.events[key] = str(self.headers["X-Stepkit-Event"])
                    else:
                        receiver.unsigned += 1
                self.send_response(204 if signed else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stepkit"
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"  # what the rows show
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stepkit(self, **extra: Any) -> dict[str, Any]:
        """The test process's STEPKIT setting: the processes' notifier (``hook``), lease and retry delay."""
        hook = {"BACKEND": "stepkit_django.notifications.WebhookNotifier"}
        return {
            "NOTIFIERS": {"hook": {**hook, "OPTIONS": {"url": self.url, "secret": WEBHOOK_SECRET}}},
            "NOTIFY_LEASE": timedelta(seconds=NOTIFY_LEASE),
            "NOTIFY_RETRY_DELAY": timedelta(seconds=1),
            **extra,
        }

    def env(self) -> dict[str, str]:
        """The same for the server and worker processes (read by tests/settings.py)."""
        return {
            "STEPKIT_WEBHOOK_URL": self.url,
            "STEPKIT_NOTIFY_LEASE_SECONDS": str(NOTIFY_LEASE),
            "STEPKIT_NOTIFY_RETRY_SECONDS": "1",
        }


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    receiver = Webhooks()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Record:
    """Everything the clients saw."""

    responses: list[tuple[float, str, int]] = field(default_factory=list)  # (time, what, status; 0 = no answer)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> outcome
    edits: dict[str, str] = field(default_factory=dict)  # checkpoint id -> text of its last confirmed edit
    starts: dict[str, int] = field(default_factory=dict)  # idempotency key -> final status
    seen: list[str] = field(default_factory=list)  # checkpoint ids the clients claimed
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    """One HTTP client on 127.0.0.1 with a user's token; a new connection per request."""

    def __init__(self, port: int, token: str, record: Record) -> None:
        self.port, self.token, self.record = port, token, record

    def call(self, what: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        try:
            conn = HTTPConnection("127.0.0.1", self.port, timeout=60)
            conn.request("POST" if body is not None else "GET", path, json.dumps(body) if body else None, headers)
            response = conn.getresponse()
            status, raw = response.status, response.read()
            conn.close()
        except OSError:
            status, raw = 0, b""
        with self.record.lock:
            self.record.responses.append((time.monotonic(), what, status))
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def insist(self, what: str, path: str, body: dict[str, Any]) -> tuple[int, Any, bool]:
        """Send a request that is safe to repeat until it gets an answer other than 503.

        Returns (status, body, ambiguous): ambiguous when an earlier attempt got a 503,
        so it may have taken effect without its answer reaching the client.
        """
        ambiguous = False
        deadline = time.monotonic() + 60
        while True:
            status, data = self.call(what, path, body)
            if status not in (0, 503) or time.monotonic() > deadline:
                return status, data, ambiguous
            ambiguous = True
            time.sleep(0.5)


def reviewer_loop(client: Client, stop_at: float, rnd: random.Random) -> None:
    record = client.record
    while time.monotonic() < stop_at:
        if record.seen and rnd.random() < 0.1:
            # Someone else's (or an already decided) checkpoint: must not be decided twice.
            decide(client, rnd.choice(record.seen), None, rnd)
            continue
        status, cp = client.call("claim-next", f"{API}/checkpoints/claim-next/?pipeline={PIPELINE}", {})
        if status == 204:
            time.sleep(0.2)
            continue
        if status != 200:
            continue
        cid, version = cp["id"], cp["version"]
        with record.lock:
            record.seen.append(cid)
        if rnd.random() < 0.5:
            text = f"edited {uuid.uuid4().hex[:8]}"
            body = {"override_data": {"text": text}, "expected_version": version}
            status, data, ambiguous = client.insist("edit", f"{API}/checkpoints/{cid}/edit/", body)
            if status == 200 and not ambiguous:
                version = data["version"]
                with record.lock:
                    record.edits[cid] = text
            else:  # the edit may or may not have happened: read back the version
                status, data = client.call("retrieve", f"{API}/checkpoints/{cid}/")
                if status != 200:
                    continue
                version = data["version"]
        decide(client, cid, version, rnd)


def decide(client: Client, cid: str, version: int | None, rnd: random.Random) -> None:
    action = "approve" if rnd.random() < 0.8 else "reject"
    rid = f"req-{uuid.uuid4().hex}"
    body: dict[str, Any] = {"comment": rid}
    if version is not None:
        body["expected_version"] = version
    status, _, ambiguous = client.insist(action, f"{API}/checkpoints/{cid}/{action}/", body)
    with client.record.lock:
        client.record.decisions[rid] = {"checkpoint": cid, "action": action, "status": status, "ambiguous": ambiguous}


def starter_loop(client: Client, stop_at: float, rnd: random.Random) -> None:
    while time.monotonic() < stop_at:
        key = f"load-{uuid.uuid4().hex}"
        body = {"pipeline": PIPELINE, "input": {"n": rnd.randrange(10**6)}, "idempotency_key": key}
        status, _, _ = client.insist("start", f"{API}/runs/", body)
        with client.record.lock:
            client.record.starts[key] = status
        time.sleep(0.25)


class Supervisor(threading.Thread):
    """Keeps two db_worker processes up, as a process manager would: a dead one is started again."""

    def __init__(self, tmp_path: Any, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.tmp_path, self.env, self.stopping = tmp_path, env, threading.Event()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.lock = threading.Lock()
        for slot in range(2):
            self.workers.append(self._spawn(slot))

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        self.started += 1
        return db_worker(self.tmp_path / f"worker-{self.started}.log", f"load-{slot}-{self.started}", **self.env)

    def kill(self, slot: int) -> None:
        with self.lock:
            os.kill(self.workers[slot].pid, signal.SIGKILL)

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            with self.lock:
                for slot, worker in enumerate(self.workers):
                    if worker.poll() is not None:
                        self.workers[slot] = self._spawn(slot)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        stop(*self.workers)


def recover_loop(stop_event: threading.Event, record: Counter[str], stepkit: dict[str, Any]) -> None:
    """``recover()`` and the sending of the notifications due every two seconds, as the periodic sweep would
    (errors while the database is down are expected)."""
    while not stop_event.wait(2):
        try:
            with override_settings(STEPKIT=stepkit):
                record["recovered"] += recover()
                record["notifications"] += deliver_due()
        except Exception:
            record["recover errors"] += 1
        finally:
            close_old_connections()
            connection.close()


def wait_until_accepting(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not start")


def test_32_clients_decide_through_a_worker_kill_and_a_database_restart(tmp_path, capsys, webhooks):
    settings_dict = connection.settings_dict
    cluster = postgres_cluster(int(settings_dict.get("PORT") or 5432))
    if cluster is None or settings_dict.get("HOST") not in ("127.0.0.1", "localhost", ""):
        if os.environ.get("STEPKIT_REQUIRE_FAULTS") == "1":
            pytest.fail("pg_ctlcluster and a local PostgreSQL cluster are needed to restart the database")
        pytest.skip("needs a local PostgreSQL cluster that pg_ctlcluster can restart")

    # -- the cast and the seeded queue ------------------------------------------------------
    editors = Group.objects.create(name="editors")
    review_perm = Permission.objects.get(codename="review_checkpoint")
    writer = User.objects.create_user("writer")
    writer.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    reviewer_tokens = []
    for i in range(REVIEWERS):
        user = User.objects.create_user(f"editor{i}")
        user.groups.add(editors)
        user.user_permissions.add(review_perm)
        reviewer_tokens.append(Token.objects.create(user=user).key)
    writer_token = Token.objects.create(user=writer).key
    with override_settings(STEPKIT=webhooks.stepkit(EXECUTOR="inline")):  # each review request posted at once
        for n in range(SEEDED):
            start(PIPELINE, {"n": n}, user=writer)
    assert Checkpoint.objects.filter(status=CheckpointStatus.PENDING).count() == SEEDED

    # -- the processes ----------------------------------------------------------------------
    port = free_port()
    server_log = tmp_path / "server.log"
    gunicorn = [sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()"]
    server = spawn(
        [*gunicorn, "--workers", "3", "--threads", "4", "--bind", f"127.0.0.1:{port}", "--timeout", "60"],
        server_log,
        STEPKIT_EXECUTOR="tasks",
        STEPKIT_LEASE_SECONDS="2",
        **webhooks.env(),
    )
    supervisor = Supervisor(tmp_path, webhooks.env())
    supervisor.start()
    stop_recovering, recovery = threading.Event(), Counter[str]()
    sweeping = webhooks.stepkit(**TASKS)
    recoverer = threading.Thread(target=recover_loop, args=(stop_recovering, recovery, sweeping), daemon=True)
    record, faults = Record(), Counter[str]()
    outage: dict[str, float] = {}
    try:
        wait_until_accepting(port)
        recoverer.start()
        began = time.monotonic()
        stop_at = began + LOAD_SECONDS

        def inject_faults() -> None:
            time.sleep(LOAD_SECONDS * KILL_WORKER_AT)
            supervisor.kill(0)
            faults["worker killed (SIGKILL) and restarted"] += 1
            time.sleep(max(0.0, began + LOAD_SECONDS * RESTART_DATABASE_AT - time.monotonic()))
            outage["start"] = time.monotonic()
            version, name = cluster
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
                check=True,
                timeout=120,
                capture_output=True,
            )
            wait_for(lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0, 60, "PG")
            outage["end"] = time.monotonic()
            faults["PostgreSQL restarted"] += 1

        faulter = threading.Thread(target=inject_faults, daemon=True)
        faulter.start()
        threads = []
        for i in range(CLIENTS):
            rnd = random.Random(i)
            if i < STARTERS:
                client = Client(port, writer_token, record)
                threads.append(threading.Thread(target=starter_loop, args=(client, stop_at, rnd)))
            else:
                client = Client(port, reviewer_tokens[i % REVIEWERS], record)
                threads.append(threading.Thread(target=reviewer_loop, args=(client, stop_at, rnd)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=LOAD_SECONDS + 180)
        faulter.join(timeout=180)
        assert not any(t.is_alive() for t in threads) and not faulter.is_alive()
        load_seconds = time.monotonic() - began

        # -- drain: every run started or approved reaches its pause or its end -------------------
        connection.close()  # the test's own connection did not survive the restart
        unfinished = Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        wait_for(
            lambda: not PipelineRun.objects.filter(unfinished).exists(),
            timeout=180,
            message="every run to pause or finish",
            logs=sorted(tmp_path.glob("*.log")),
        )
    finally:
        stop_recovering.set()
        if recoverer.is_alive():
            recoverer.join(timeout=30)
        supervisor.stop()
        stop(server)

    # -- what the clients saw --------------------------------------------------------------------
    statuses = Counter(status for _, _, status in record.responses)
    window = (outage["start"], outage["end"] + GRACE)
    late_503 = [r for r in record.responses if r[2] == 503 and not window[0] <= r[0] <= window[1]]
    assert not late_503, f"503 outside the outage: {late_503[:5]}"
    assert set(statuses) <= {200, 201, 204, 409, 503}, f"unexpected statuses: {statuses}"
    assert statuses[503] > 0  # the outage was seen, and answered with 503 (not 500, not a dropped connection)

    # -- decisions: each exactly once in the audit trail ----------------------------------------
    decision_actions = [AuditAction.APPROVED, AuditAction.REJECTED]
    events = list(
        AuditEvent.objects.filter(run__pipeline_name=PIPELINE, action__in=decision_actions).values_list(
            "checkpoint_id", "action", "note"
        )
    )
    per_checkpoint = Counter(str(cp) for cp, _, _ in events)
    assert set(per_checkpoint.values()) == {1}, "a checkpoint decided more than once"
    decided = Checkpoint.objects.filter(
        pipeline_name=PIPELINE, status__in=[CheckpointStatus.APPROVED, CheckpointStatus.REJECTED]
    )
    assert decided.count() == len(events)
    by_note = {note: (str(cp), action) for cp, action, note in events}
    assert len(by_note) == len(events)  # each request decided at most one checkpoint
    confirmed = ambiguous_applied = 0
    for rid, outcome in record.decisions.items():
        expected_action = AuditAction.APPROVED if outcome["action"] == "approve" else AuditAction.REJECTED
        if outcome["status"] == 200:
            assert by_note.get(rid) == (outcome["checkpoint"], expected_action), rid
            confirmed += 1
        elif rid in by_note:
            # Refused (409) on a retry after a 503: the first attempt had committed.
            assert outcome["ambiguous"], f"{rid} was refused but is in the audit trail"
            assert by_note[rid] == (outcome["checkpoint"], expected_action)
            ambiguous_applied += 1
    assert confirmed + ambiguous_applied == len(events)  # no decision the clients did not ask for

    # -- nothing left half-done -------------------------------------------------------------------
    pending = Checkpoint.objects.filter(pipeline_name=PIPELINE, status=CheckpointStatus.PENDING)
    assert not pending.filter(Q(decided_at__isnull=False) | Q(decided_by__isnull=False)).exists()
    assert not pending.filter(pk__in=[cp for cp, _, _ in events]).exists()
    assert not pending.annotate(n=Count("approvals")).filter(n__gt=0).exists()

    approved = Checkpoint.objects.filter(pipeline_name=PIPELINE, status=CheckpointStatus.APPROVED)
    approved_runs = {str(r) for r in approved.values_list("run_id", flat=True)}
    completed = Counter(
        str(r)
        for r in AuditEvent.objects.filter(action=AuditAction.RUN_COMPLETED, run__pipeline_name=PIPELINE).values_list(
            "run_id", flat=True
        )
    )
    assert set(completed) == approved_runs and set(completed.values()) <= {1}  # each approved run completed once
    assert set(PipelineRun.objects.filter(pk__in=approved_runs).values_list("status", flat=True)) <= {
        RunStatus.COMPLETED
    }
    published: dict[str, list[dict[str, Any]]] = {}
    for key, payload in SideEffect.objects.filter(kind="publish").values_list("key", "payload"):
        published.setdefault(key, []).append(payload)
    assert set(published) == approved_runs  # rejected runs published nothing
    for cp in approved.select_related("run"):
        texts = {p["text"] for p in published[str(cp.run_id)]}
        keys = {p["key"] for p in published[str(cp.run_id)]}
        assert len(keys) == 1  # a repeated step (a killed worker) saw the same idempotency key
        expected = cp.effective_context["text"]
        assert texts == {expected}, "published data differs from what the reviewer approved"
        if str(cp.pk) in record.edits:  # the last edit a client saw confirmed is what was published
            assert expected == record.edits[str(cp.pk)]
    rejected_runs = Checkpoint.objects.filter(pipeline_name=PIPELINE, status=CheckpointStatus.REJECTED)
    assert set(PipelineRun.objects.filter(checkpoints__in=rejected_runs).values_list("status", flat=True)) <= {
        RunStatus.REJECTED
    }

    # -- the counts reconcile -------------------------------------------------------------------
    started_ok = [key for key, status in record.starts.items() if status in (200, 201)]
    runs = PipelineRun.objects.filter(pipeline_name=PIPELINE)
    assert runs.count() == SEEDED + len(started_ok)
    assert set(runs.filter(idempotency_key__isnull=False).values_list("idempotency_key", flat=True)) == set(started_ok)
    by_status = Counter(Checkpoint.objects.filter(pipeline_name=PIPELINE).values_list("status", flat=True))
    assert sum(by_status.values()) == runs.count()  # every run paused once, at its one checkpoint
    assert by_status[CheckpointStatus.APPROVED] + by_status[CheckpointStatus.REJECTED] == len(events)
    assert faults["PostgreSQL restarted"] == 1 and faults["worker killed (SIGKILL) and restarted"] == 1
    assert supervisor.started >= 3  # the killed worker was replaced (and any that died in the outage)

    # -- notifications: every event told, every notification delivered, none more than twice ------------
    def all_sent() -> bool:
        with override_settings(STEPKIT=sweeping):  # the periodic sweep, until nothing is left to send
            recovery["notifications sent at the end"] += deliver_due()
        return not Notification.objects.filter(status=NotificationStatus.PENDING).exists()

    wait_for(all_sent, timeout=NOTIFY_LEASE + 120, message="every notification to be sent")
    rows = {
        key: (event, str(cp), status, attempts)
        for key, event, cp, status, attempts in Notification.objects.values_list(
            "key", "event", "checkpoint_id", "status", "attempts"
        )
    }
    assert {status for _, _, status, _ in rows.values()} == {NotificationStatus.SENT}  # none failed for good
    # Each checkpoint created (seeded, started by a client, or paused again by a recovered run) got its
    # review request: one per recipient and channel (here the one webhook), by the unique key; no other.
    who = f"address:{webhooks.address}"
    checkpoints = list(Checkpoint.objects.filter(pipeline_name=PIPELINE).values_list("pk", flat=True))
    requested = {key for key, (event, *_rest) in rows.items() if event == NotificationEvent.REVIEW_REQUESTED}
    assert requested == {notification_key(NotificationEvent.REVIEW_REQUESTED, cp, "hook", who) for cp in checkpoints}
    # Each decision in the audit trail, and only those, told its checkpoint's run once.
    decided_told = Counter((cp, event) for event, cp, _, _ in rows.values() if event != "review_requested")
    assert decided_told == Counter((str(cp), str(action)) for cp, action, _ in events)
    # The receiver got every notification written, and nothing else (no rolled-back event was sent); a
    # repeat only after a sender lost mid-send (killed, or cut off from its database) was replaced.
    assert webhooks.unsigned == 0 and set(webhooks.received) == set(rows)
    assert all(webhooks.events[key] == rows[key][0] for key in rows)
    repeated = {key: n for key, n in webhooks.received.items() if n > 1}
    assert max(webhooks.received.values()) <= 2, f"delivered more than twice: {repeated}"
    assert all(webhooks.received[key] <= rows[key][3] for key in rows)  # each delivery was an attempt

    answers = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    with capsys.disabled():
        print(
            f"\nload with faults: {CLIENTS} clients for {load_seconds:.0f} s, {len(record.responses)} requests "
            f"({answers}); "
            f"{len(events)} decisions ({by_status[CheckpointStatus.APPROVED]} approved, "
            f"{by_status[CheckpointStatus.REJECTED]} rejected; {ambiguous_applied} committed before a 503), "
            f"{len(started_ok)} runs started by the clients + {SEEDED} seeded, {len(approved_runs)} approved runs "
            f"completed once each; faults survived: {dict(faults)}, outage "
            f"{outage['end'] - outage['start']:.1f} s, {supervisor.started - 2} worker starts after the first two, "
            f"recover() re-queued or re-sent {recovery['recovered']} runs; {len(rows)} notifications delivered "
            f"({len(repeated)} twice), {recovery['notifications']} of them by the sweep during the load and "
            f"{recovery['notifications sent at the end']} after it"
        )
