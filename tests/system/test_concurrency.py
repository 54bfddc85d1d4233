"""Concurrency on PostgreSQL with real threads, connections and processes (no mocks)."""

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.utils import timezone

from stepkit_django import Review, ReviewConflict, resume_run, review, start, stepkit
from stepkit_django.models import AuditEvent, Checkpoint, PipelineRun
from stepkit_django.status import CheckpointStatus, RunStatus
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_threads(count, target):
    """Run ``target(i)`` in ``count`` threads released together; return results and exceptions."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = [None] * count

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:
            errors[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def reviewers(people, count):
    made = []
    for i in range(count):
        user = User.objects.create_user(f"reviewer{i}")
        user.groups.add(people.editors)
        user.user_permissions.add(people.review_permission)
        made.append(User.objects.get(pk=user.pk))
    return made


def test_sixteen_concurrent_approvals_exactly_one_wins_and_send_runs_once(people):
    run = start("email-approval", {"message": "m", "customer": "Ada", "to": "ada@example.com"}, user=people.alice)
    checkpoint = run.checkpoints.get()
    users = reviewers(people, 16)

    results, errors = in_threads(16, lambda i: review.approve(checkpoint, users[i], comment=f"from {i}"))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1, errors
    assert all(isinstance(e, ReviewConflict) for e in errors if e is not None)
    assert sum(e is not None for e in errors) == 15
    assert SideEffect.objects.filter(kind="email").count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert AuditEvent.objects.filter(run=run, action="approved").count() == 1
    assert AuditEvent.objects.filter(run=run, action="run_completed").count() == 1


def test_two_sweepers_expire_each_checkpoint_exactly_once(people, registered_pipelines):
    registered_pipelines(
        stepkit("sweep")
        .step("wait", lambda c: {}, review=Review(timeout=timedelta(hours=1), on_timeout="reject"))
        .step("never")
    )
    runs = [start("sweep", {"i": i}, user=people.alice) for i in range(30)]
    later = timezone.now() + timedelta(hours=2)

    results, errors = in_threads(2, lambda i: review.expire_due(now=later))

    assert errors == [None, None]
    assert sum(results) == 30
    assert Checkpoint.objects.filter(status=CheckpointStatus.EXPIRED).count() == 30
    for run in runs:
        assert AuditEvent.objects.filter(run=run, action="expired").count() == 1
    assert PipelineRun.objects.filter(status=RunStatus.REJECTED).count() == 30


def test_claim_next_never_hands_the_same_checkpoint_to_two_reviewers(people):
    for i in range(24):
        start("email-approval", {"message": f"m{i}", "customer": "c", "to": "t"}, user=people.alice)
    users = reviewers(people, 8)

    def drain(i):
        got = []
        while (cp := review.claim_next(users[i])) is not None:
            got.append(cp.pk)
        return got

    results, errors = in_threads(8, drain)
    assert errors == [None] * 8
    claimed = [pk for got in results for pk in got]
    assert len(claimed) == 24
    assert len(set(claimed)) == 24
    assert AuditEvent.objects.filter(action="claimed").count() == 24


def test_a_killed_process_loses_no_progress_and_completed_steps_do_not_run_again(db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _url_of_test_database(),
        "STEPKIT_TEST_CRASH_AT_C": "1",
    }
    code = "import django; django.setup(); from stepkit_django import start; start('crash-demo', {'order': 7})"
    root = Path(__file__).resolve().parents[2]
    finished = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, timeout=120, capture_output=True)
    assert finished.returncode == 17, finished.stderr.decode()

    run = PipelineRun.objects.get(pipeline_name="crash-demo")
    assert run.status == RunStatus.RUNNING
    assert run.current_step == "b"
    assert run.context == {"order": 7, "a": True, "b": True}

    run = resume_run(run, force=True)  # the process is gone; its lease has not expired yet
    assert run.status == RunStatus.COMPLETED
    attempts = list(SideEffect.objects.filter(kind="attempt").order_by("pk").values_list("key", flat=True))
    assert attempts == ["a", "b", "c", "c", "d"]


def _url_of_test_database():
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    auth = s.get("USER") or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def test_concurrent_starts_with_one_idempotency_key_create_one_run(registered_pipelines):
    calls = []
    registered_pipelines(stepkit("charge").step("charge", lambda c: calls.append(1) or {"charged": True}))

    results, errors = in_threads(8, lambda i: start("charge", {"amount": 10}, idempotency_key="invoice-1001"))

    assert errors == [None] * 8
    assert len({run.pk for run in results}) == 1
    assert PipelineRun.objects.filter(idempotency_key="invoice-1001").count() == 1
    assert calls == [1]


def test_api_claim_next_never_hands_the_same_checkpoint_to_two_callers(people):
    from rest_framework.test import APIClient

    for i in range(12):
        start("email-approval", {"message": f"m{i}", "customer": "c", "to": "t"}, user=people.alice)
    users = reviewers(people, 6)

    def drain(i):
        client = APIClient()
        client.force_authenticate(users[i])
        got = []
        while (response := client.post("/api/stepkit/checkpoints/claim-next/")).status_code == 200:
            got.append(response.json()["id"])
        assert response.status_code == 204
        return got

    results, errors = in_threads(6, drain)
    assert errors == [None] * 6
    claimed = [pk for got in results for pk in got]
    assert len(claimed) == len(set(claimed)) == 12


def test_the_database_refuses_to_rewrite_the_audit_trail(people):
    from django.db import DatabaseError, transaction

    run = start("email-approval", {"message": "m", "customer": "c", "to": "t"}, user=people.alice)
    count = AuditEvent.objects.filter(run=run).count()
    for sql in (
        "UPDATE stepkit_django_auditevent SET note = 'rewritten'",
        "DELETE FROM stepkit_django_auditevent",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.filter(run=run).count() == count
    assert not AuditEvent.objects.filter(note="rewritten").exists()


def test_mixed_race_of_approve_reject_cancel_and_expire_never_deadlocks_and_decides_once(people, registered_pipelines):
    """16 threads per round: approvals, rejections, cancellations and sweeps of one overdue-soon checkpoint."""
    registered_pipelines(
        stepkit("race")
        .step("draft", lambda c: {"draft": "d"}, review=Review(timeout=timedelta(hours=1), on_timeout="reject"))
        .step("send", lambda c: {"sent": True})
    )
    users = reviewers(people, 16)
    manager = people.root
    outcomes = []
    for _round in range(20):
        run = start("race", {}, user=people.alice)
        cp = run.checkpoints.get()
        later = timezone.now() + timedelta(hours=2)

        def act(i, cp=cp, run=run, later=later):
            kind = i % 4
            if kind == 0:
                return review.approve(cp, users[i])
            if kind == 1:
                return review.reject(cp, users[i])
            if kind == 2:
                return review.cancel_run(run, manager)
            return review.expire_due(now=later)

        _results, errors = in_threads(16, act)
        unexpected = [e for e in errors if e is not None and not isinstance(e, ReviewConflict)]
        assert unexpected == [], unexpected  # no deadlock, no other database error
        cp.refresh_from_db()
        run.refresh_from_db()
        # The checkpoint is decided exactly once: approved, rejected or expired, or cancelled with its run
        # (a cancellation after an approval cancels the running run, not the decided checkpoint).
        decided = AuditEvent.objects.filter(checkpoint=cp, action__in=["approved", "rejected", "expired"]).count()
        assert decided + (cp.status == CheckpointStatus.CANCELLED) == 1
        assert cp.status != CheckpointStatus.PENDING and run.is_finished
        outcomes.append(cp.status)
    assert len(outcomes) == 20


def test_concurrent_api_starts_by_two_users_with_one_key_never_leak_or_fail(people):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    add = Permission.objects.get(codename="add_pipelinerun")
    users = []
    for i in range(8):
        user = User.objects.create_user(f"starter{i}")
        user.user_permissions.add(add)
        users.append(User.objects.get(pk=user.pk))

    def post(i):
        client = APIClient()
        client.force_authenticate(users[i])
        body = {"pipeline": "email-approval", "input": {"message": f"secret {i}", "customer": "c", "to": "t@x"}}
        return client.post("/api/stepkit/runs/", {**body, "idempotency_key": "shared-key"}, format="json")

    results, errors = in_threads(8, post)
    assert errors == [None] * 8
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 7, codes  # never a 500, never someone else's run
    run = PipelineRun.objects.get(idempotency_key="shared-key")
    winner = next(r for r in results if r.status_code == 201)
    assert winner.json()["id"] == str(run.pk)
    for response in results:
        if response.status_code == 409:
            assert str(run.pk) not in response.content.decode() and "secret" not in response.content.decode()


def test_request_changes_racing_approve_and_reject_decides_once_and_the_step_reruns_at_most_once(
    people, registered_pipelines
):
    registered_pipelines(
        stepkit("race-revisions")
        .step("draft", lambda c: {"draft": (c.get("review") or {}).get("comment", "first")}, review=Review())
        .step("send", lambda c: {"sent": True})
    )
    users = reviewers(people, 6)
    for _ in range(3):  # a few rounds: each a fresh run and a fresh race
        run = start("race-revisions", {}, user=people.alice)
        checkpoint = run.checkpoints.get()

        def decide(i, checkpoint=checkpoint):
            user = users[i]
            if i % 3 == 0:
                return review.request_changes(checkpoint.pk, user, f"Again {i}")
            if i % 3 == 1:
                return review.approve(checkpoint.pk, user)
            return review.reject(checkpoint.pk, user, "No")

        results, errors = in_threads(6, decide)
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, errors
        assert all(e is None or isinstance(e, ReviewConflict) for e in errors), errors
        decided = Checkpoint.objects.get(pk=checkpoint.pk)
        run.refresh_from_db()
        revisions = Checkpoint.objects.filter(run=run, revision_of=checkpoint)
        if decided.status == CheckpointStatus.CHANGES_REQUESTED:
            assert run.status == RunStatus.PAUSED and revisions.count() == 1  # the step ran again once
            assert run.events.filter(action="step_completed", data__step="draft").count() == 2
        else:
            assert not revisions.exists()
            assert run.events.filter(action="step_completed", data__step="draft").count() == 1
