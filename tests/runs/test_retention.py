"""Retention and erasure: what a purge removes and keeps, and that the trail stays append-only for everyone else."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from stepkit_django import RunNotEnded, audit, retention, stepkit
from stepkit_django.models import AuditEvent, AuditTrailImmutable, Checkpoint, PipelineRun
from stepkit_django.status import AuditAction, RunStatus

TABLE = AuditEvent._meta.db_table
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's trigger")
NOW = timezone.now()


def ended_run(days_ago=100, status=RunStatus.COMPLETED, pipeline="kept-data", actor=None):
    """A run that ended ``days_ago`` days ago, with a checkpoint, an edit and a failure in its trail."""
    finished = NOW - timedelta(days=days_ago) if days_ago is not None else None
    run = PipelineRun.objects.create(
        pipeline_name=pipeline,
        status=status,
        input={"email": "ann@example.com"},
        context={"name": "Ann"},
        outer_contexts=[{"name": "Ann"}],
        error="ValueError: bad address ann@example.com",
        finished_at=finished,
    )
    cp = Checkpoint.objects.create(
        run=run,
        pipeline_name=pipeline,
        step="review",
        token="signed-token",
        context={"name": "Ann"},
        override_data={"name": "Anne"},
        title="Ann's request",
        summary={"Name": "Ann"},
        status="approved",
    )
    audit.record(run, AuditAction.RUN_STARTED, actor=actor, data={"version": 1, "email": "ann@example.com"})
    audit.record(
        run,
        AuditAction.EDITED,
        checkpoint=cp,
        actor=actor,
        data={"changes": {"name": {"before": "Ann", "after": "Anne"}}, "step": "review"},
    )
    audit.record(run, AuditAction.RUN_FAILED, data={"step": "send", "error": "ValueError: bad ann@example.com"})
    return run


def kept_fields():
    return list(AuditEvent.objects.order_by("id").values_list("id", "action", "actor", "timestamp", "note", "run"))


def snapshot():
    return (
        list(PipelineRun.objects.order_by("pk").values()),
        list(Checkpoint.objects.order_by("pk").values()),
        list(AuditEvent.objects.order_by("pk").values()),
    )


@pytest.mark.django_db
def test_purge_removes_the_data_and_keeps_who_did_what_and_when(people):
    run = ended_run(actor=people.bob)
    before = kept_fields()
    done = retention.purge(NOW - timedelta(days=90))
    assert done == {"runs": 1, "checkpoints": 1, "events": 3, "batches": 1}
    run.refresh_from_db()
    assert (run.input, run.context, run.outer_contexts, run.error, run.traceback) == ({}, {}, [], "", "")
    assert run.purged_at is not None and run.status == RunStatus.COMPLETED
    cp = run.checkpoints.get()
    assert (cp.context, cp.override_data, cp.token, cp.title, cp.summary) == ({}, {}, "", "", {})
    assert cp.step == "review" and cp.status == "approved"
    events = list(run.events.order_by("id"))
    assert kept_fields()[: len(before)] == before  # action, actor, time, note, run: untouched
    started, edited, failed, purged = events
    assert started.data == {"version": 1, "purged": True, "purged_keys": ["email"]}
    assert edited.data == {"changes": {"name": {}}, "step": "review", "purged": True}
    assert failed.data == {"step": "send", "error": "ValueError", "purged": True}
    assert "ann" not in str([e.data for e in events]).lower()
    assert purged.action == AuditAction.PURGED and purged.actor is None
    assert purged.data["why"] == "retention" and purged.data["events"] == 3 and purged.data["checkpoints"] == 1


@pytest.mark.django_db
def test_purge_leaves_recent_and_unended_runs_alone():
    recent = ended_run(days_ago=10)
    paused = ended_run(days_ago=None, status=RunStatus.PAUSED)
    running = ended_run(days_ago=None, status=RunStatus.RUNNING)
    # a run that ended long ago and was retried: running again, its finished_at is old
    retried = ended_run(days_ago=200, status=RunStatus.RUNNING)
    before = snapshot()
    assert retention.purge(NOW - timedelta(days=90))["runs"] == 0
    assert snapshot() == before
    for run in (recent, paused, running, retried):
        run.refresh_from_db()
        assert run.context == {"name": "Ann"} and run.purged_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("status", sorted(RunStatus.finished()))
def test_every_ended_status_is_purged(status):
    ended_run(status=status)
    assert retention.purge(NOW - timedelta(days=90))["runs"] == 1


@pytest.mark.django_db
def test_a_dry_run_changes_nothing_and_counts():
    ended_run(), ended_run(), ended_run(days_ago=5)
    before = snapshot()
    assert retention.purge(NOW - timedelta(days=90), dry_run=True) == {
        "runs": 2,
        "checkpoints": 2,
        "events": 6,
        "batches": 0,
    }
    assert snapshot() == before


@pytest.mark.django_db
def test_a_purge_runs_in_batches_and_a_second_one_finds_nothing(django_assert_max_num_queries):
    runs = [ended_run(days_ago=100 + i) for i in range(5)]
    done = retention.purge(NOW - timedelta(days=90), batch_size=2)
    assert done["runs"] == 5 and done["batches"] == 3
    assert all(r.purged_at for r in PipelineRun.objects.filter(pk__in=[r.pk for r in runs]))
    assert AuditEvent.objects.filter(action=AuditAction.PURGED).count() == 5  # one each, never twice
    assert retention.purge(NOW - timedelta(days=90), batch_size=2) == {
        "runs": 0,
        "checkpoints": 0,
        "events": 0,
        "batches": 0,
    }


@pytest.mark.django_db
def test_an_interrupted_purge_keeps_its_batches_and_resumes(monkeypatch):
    for i in range(4):
        ended_run(days_ago=100 + i)
    real = retention._redact_events
    calls = []

    def failing(ids):
        calls.append(ids)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(ids)

    monkeypatch.setattr(retention, "_redact_events", failing)
    with pytest.raises(RuntimeError):
        retention.purge(NOW - timedelta(days=90), batch_size=2)
    assert PipelineRun.objects.filter(purged_at__isnull=False).count() == 2  # the failed batch rolled back
    monkeypatch.setattr(retention, "_redact_events", real)
    assert retention.purge(NOW - timedelta(days=90), batch_size=2)["runs"] == 2
    assert PipelineRun.objects.filter(purged_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_the_pipeline_option_and_the_registered_retention(registered_pipelines):
    registered_pipelines(stepkit("short-lived").step("s", lambda ctx: {}), retention=timedelta(days=30))
    registered_pipelines(stepkit("kept-forever").step("s", lambda ctx: {}))
    short = ended_run(days_ago=40, pipeline="short-lived")
    young = ended_run(days_ago=20, pipeline="short-lived")
    forever = ended_run(days_ago=4000, pipeline="kept-forever")
    assert retention.purge(NOW - timedelta(days=10), pipeline="kept-forever", dry_run=True)["runs"] == 1
    assert retention.purge(now=NOW)["runs"] == 1  # no cutoff: each pipeline's own retention
    assert [r.pk for r in PipelineRun.objects.filter(purged_at__isnull=False)] == [short.pk]
    young.refresh_from_db(), forever.refresh_from_db()
    assert young.context and forever.context


def test_register_refuses_a_retention_that_is_not_a_positive_timedelta(registered_pipelines):
    for wrong in (timedelta(0), 30, "90d"):
        with pytest.raises(ValueError, match="retention"):
            registered_pipelines(stepkit("bad-retention").step("s", lambda ctx: {}), retention=wrong)


@pytest.mark.django_db
def test_the_command_purges_and_its_dry_run_changes_nothing():
    ended_run(), ended_run(days_ago=5)
    before = snapshot()
    out = io.StringIO()
    call_command("stepkit_purge", "--older-than", "90d", "--dry-run", stdout=out)
    assert "1 run(s) would be purged" in out.getvalue() and snapshot() == before
    call_command("stepkit_purge", "--older-than", "90d", "--pipeline", "kept-data", stdout=out)
    assert "1 run(s) purged, with 1 checkpoint(s) and 3 audit event(s), in 1 batch(es)." in out.getvalue()
    for wrong in ("90", "0d", "ninety days", "-3d"):
        with pytest.raises(CommandError, match="older-than"):
            call_command("stepkit_purge", "--older-than", wrong)
    with pytest.raises(CommandError, match="batch-size"):
        call_command("stepkit_purge", "--batch-size", "0")


@pytest.mark.django_db
def test_the_periodic_task_purges_by_registered_retention(registered_pipelines):
    from stepkit_django.execution import jobs

    registered_pipelines(stepkit("short-lived").step("s", lambda ctx: {}), retention=timedelta(days=30))
    ended_run(days_ago=40, pipeline="short-lived")
    assert jobs.purge()["runs"] == 1


# -- erasure -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_erase_redacts_one_run_now_with_an_event_by_who_asked(people):
    run, other = ended_run(days_ago=1), ended_run(days_ago=1)
    done = retention.erase(run, people.root)
    assert done == {"runs": 1, "checkpoints": 1, "events": 3}
    run.refresh_from_db(), other.refresh_from_db()
    assert run.context == {} and other.context == {"name": "Ann"}
    event = run.events.get(action=AuditAction.PURGED)
    assert event.actor == people.root and event.data["why"] == "erasure"


@pytest.mark.django_db
def test_erase_refuses_a_run_that_has_not_ended():
    run = ended_run(days_ago=None, status=RunStatus.PAUSED)
    before = snapshot()
    with pytest.raises(RunNotEnded, match="cancel it first"):
        retention.erase(run)
    assert snapshot() == before


def _erase_in_admin(client, user, run):
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client.post(
        "/admin/stepkit_django/pipelinerun/", {"action": "erase_runs", "_selected_action": [str(run.pk)]}, follow=True
    )


@pytest.mark.django_db
def test_the_admin_action_erases_for_run_managers_only(people, client):
    run = ended_run(days_ago=1)
    before = snapshot()
    response = _erase_in_admin(client, people.bob, run)  # a reviewer, not a run manager
    assert snapshot() == before
    assert response.status_code in (200, 403)
    people.dave.user_permissions.add(Permission.objects.get(codename="manage_pipelinerun"))
    people.dave.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    response = _erase_in_admin(client, people.dave, run)
    assert [str(m) for m in response.context["messages"]] == ["Erased the data of 1 of 1 run(s)."]
    run.refresh_from_db()
    assert run.context == {} and run.events.get(action=AuditAction.PURGED).actor == people.dave
    paused = ended_run(days_ago=None, status=RunStatus.PAUSED)
    response = _erase_in_admin(client, people.dave, paused)
    [message] = [str(m) for m in response.context["messages"]]
    assert "Erased the data of 0 of 1 run(s)." in message and "cancel it first" in message


# -- the trail stays append-only for everyone else -------------------------------------------------


@pytest.mark.django_db
def test_the_orm_still_refuses_updates_after_a_purge():
    run = ended_run()
    retention.purge(NOW - timedelta(days=90))
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(run=run).update(data={})


@pytest.mark.django_db
def test_raw_sql_without_the_purges_flag_is_refused():
    run = ended_run()
    before = snapshot()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET data = '{{}}' WHERE run_id = %s", [_run_key(run)])
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    ["action = 'approved'", "note = 'rewritten'", "pipeline_name = 'other'", "timestamp = '2000-01-01 00:00:00'"],
    ids=repr,
)
def test_with_the_flag_only_the_data_may_change(change):
    run = ended_run()
    with transaction.atomic(), connection.cursor() as cursor:
        retention._allow(cursor, True)
        cursor.execute(f"UPDATE {TABLE} SET data = '{{}}' WHERE run_id = %s", [_run_key(run)])  # accepted
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(f"UPDATE {TABLE} SET {change} WHERE run_id = %s", [_run_key(run)])
        retention._allow(cursor, False)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(f"UPDATE {TABLE} SET data = '{{}}' WHERE run_id = %s", [_run_key(run)])
    assert set(run.events.values_list("action", flat=True)) == {"run_started", "edited", "run_failed"}


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_the_postgresql_flag_is_transaction_local():
    run = ended_run()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL stepkit.purge = 'on'")
        cursor.execute(f"UPDATE {TABLE} SET data = '{{}}' WHERE run_id = %s", [run.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET data = '{{}}' WHERE run_id = %s", [run.pk])  # the next transaction
    assert all(data == {} for data in run.events.values_list("data", flat=True))  # the first one's change


@pytest.mark.django_db
def test_deletes_stay_refused_with_the_flag():
    run = ended_run()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        retention._allow(cursor, True)
        cursor.execute(f"DELETE FROM {TABLE} WHERE run_id = %s", [_run_key(run)])
    assert run.events.count() == 3


def _run_key(run):
    """The run's key as the database stores it (SQLite: 32 hex digits)."""
    return run.pk.hex if connection.vendor == "sqlite" else run.pk


@pytest.mark.django_db
def test_the_trail_tells_a_purge_and_an_erasure_and_the_redacted_edit(people):
    from django.utils import translation

    from stepkit_django.sentences import tell

    run, erased = ended_run(actor=people.bob), ended_run(days_ago=1)
    retention.purge(NOW - timedelta(days=90))
    retention.erase(erased, people.root)
    edited = run.events.get(action=AuditAction.EDITED)
    assert tell(edited, full=True).sentence == "Edited name by bob"
    assert "retention period" in tell(run.events.get(action=AuditAction.PURGED), full=True).sentence
    with translation.override("fr"):
        told = tell(erased.events.get(action=AuditAction.PURGED), full=True).sentence
    assert told == "Données de l’exécution effacées par root ; qui a décidé quoi et quand est conservé"
