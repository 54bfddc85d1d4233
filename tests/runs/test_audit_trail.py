"""The audit trail is append-only: through the ORM, through raw SQL, on SQLite and on PostgreSQL.

Django's own flush (``manage.py flush``, and the one after every ``transaction=True``
test) still empties it: ``TRUNCATE`` on PostgreSQL, which row triggers do not see,
and on SQLite a ``DELETE`` run with the triggers dropped and re-created in its transaction.
"""

import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from stepkit_django.models import AuditEvent, AuditTrailImmutable, PipelineRun
from stepkit_django.status import AuditAction

TABLE = AuditEvent._meta.db_table
TRIGGERS = {"stepkit_django_audit_no_update", "stepkit_django_audit_no_delete"}
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own triggers")


def an_event(note="original", **fields):
    run = PipelineRun.objects.create(pipeline_name="audited")
    return AuditEvent.objects.create(
        run=run, pipeline_name="audited", action=AuditAction.RUN_STARTED, note=note, **fields
    )


def row(event):
    return AuditEvent.objects.filter(pk=event.pk).values("action", "note", "data", "timestamp").get()


def sqlite_triggers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
        return {name for (name,) in cursor.fetchall()}


# -- the ORM --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_saving_a_new_event_over_an_existing_ones_key_is_refused_and_the_row_stays():
    existing = an_event()
    before = row(existing)
    forged = AuditEvent(
        pk=existing.pk, run=existing.run, pipeline_name="audited", action=AuditAction.RUN_COMPLETED, note="rewritten"
    )
    with pytest.raises(AuditTrailImmutable, match="already"):
        forged.save()
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.create(pk=existing.pk, run=existing.run, pipeline_name="audited", action="run_failed")
    assert row(existing) == before
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs", [{}, {"update_fields": ["note"]}, {"force_update": True}, {"force_insert": False}], ids=repr
)
def test_saving_a_loaded_event_again_is_refused_however_asked(kwargs):
    event = AuditEvent.objects.get(pk=an_event().pk)
    before = row(event)
    event.note = "rewritten"
    with pytest.raises(AuditTrailImmutable):
        event.save(**kwargs)
    assert row(event) == before


@pytest.mark.django_db
def test_update_or_save_flags_on_a_new_event_are_refused_too():
    run = PipelineRun.objects.create(pipeline_name="audited")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent(run=run, pipeline_name="audited", action="run_started").save(force_update=True)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_new_event_with_a_key_of_its_own_is_inserted():
    run = PipelineRun.objects.create(pipeline_name="audited")
    event = AuditEvent(pk=987654, run=run, pipeline_name="audited", action="run_started", note="chosen key")
    event.save()
    assert AuditEvent.objects.get(pk=987654).note == "chosen key"
    assert not event._state.adding


@pytest.mark.django_db
def test_the_base_manager_refuses_update_and_delete():
    event = an_event()
    before = row(event)
    assert isinstance(AuditEvent._base_manager.all(), type(AuditEvent.objects.all()))
    with pytest.raises(AuditTrailImmutable):
        AuditEvent._base_manager.filter(pk=event.pk).update(note="rewritten")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent._base_manager.filter(pk=event.pk).delete()
    event.note = "rewritten"
    with pytest.raises(AuditTrailImmutable):
        AuditEvent._base_manager.bulk_update([event], ["note"])
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.bulk_update([event], ["note"])
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"note": "rewritten"})
    assert row(event) == before


@pytest.mark.django_db
def test_bulk_create_may_not_update_on_conflict():
    event = an_event()
    before = row(event)
    forged = AuditEvent(pk=event.pk, run=event.run, pipeline_name="audited", action="run_failed", note="rewritten")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.bulk_create([forged], update_conflicts=True, unique_fields=["id"], update_fields=["note"])
    assert row(event) == before
    fresh = AuditEvent(run=event.run, pipeline_name="audited", action="run_completed")
    assert len(AuditEvent.objects.bulk_create([fresh])) == 1  # plain inserts are fine


@pytest.mark.django_db
def test_related_lookups_work_through_the_guarded_base_manager(django_assert_num_queries):
    from django.contrib.auth.models import User

    actor = User.objects.create_user("auditor")
    event = an_event(actor=actor)
    with django_assert_num_queries(1):
        loaded = AuditEvent.objects.select_related("run", "checkpoint", "actor").get(pk=event.pk)
        assert (loaded.run.pk, loaded.actor.username, loaded.checkpoint) == (event.run.pk, "auditor", None)
    assert list(event.run.events.all()) == [event]
    assert list(PipelineRun.objects.filter(events__note="original")) == [event.run]
    runs = list(PipelineRun.objects.prefetch_related("events").filter(pk=event.run.pk))
    assert [e.pk for e in runs[0].events.all()] == [event.pk]
    assert list(actor.stepkit_audit_events.all()) == [event]
    fresh = AuditEvent.objects.get(pk=event.pk)
    fresh.refresh_from_db()
    assert fresh.run.pipeline_name == "audited"  # the forward relation, loaded lazily
    with pytest.raises(ProtectedError):
        event.run.delete()  # the run's events protect it; nothing is deleted
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_loaddata_adds_events_but_cannot_rewrite_one(tmp_path):
    import json

    from django.core import serializers

    event = an_event()
    before = row(event)
    [record] = json.loads(serializers.serialize("json", [event]))
    fixture = tmp_path / "events.json"
    fixture.write_text(
        json.dumps([{**record, "pk": event.pk + 1000, "fields": {**record["fields"], "note": "restored"}}])
    )
    call_command("loaddata", str(fixture), verbosity=0)
    assert AuditEvent.objects.get(pk=event.pk + 1000).note == "restored"
    fixture.write_text(json.dumps([{**record, "fields": {**record["fields"], "note": "rewritten"}}]))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        call_command("loaddata", str(fixture), verbosity=0)  # a raw save: Django's UPDATE, which the database refuses
    assert row(event) == before


# -- the database ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [f"UPDATE {TABLE} SET note = 'rewritten' WHERE id = %s", f"DELETE FROM {TABLE} WHERE id = %s"],
    ids=["UPDATE", "DELETE"],
)
def test_raw_sql_update_and_delete_are_refused_by_the_database(statement):
    event = an_event()
    before = row(event)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])
    assert row(event) == before


@pytest.mark.django_db
def test_a_delete_of_every_row_is_refused_too():
    event = an_event()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@on_sqlite
@pytest.mark.django_db
def test_sqlite_has_the_triggers():
    assert sqlite_triggers() == TRIGGERS


@pytest.mark.django_db(transaction=True)
def test_djangos_flush_still_empties_the_trail_and_it_stays_append_only():
    an_event()
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists() and not PipelineRun.objects.exists()
    if connection.vendor == "sqlite":
        assert sqlite_triggers() == TRIGGERS  # re-created in the flush's own transaction
    event = an_event()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # and the flush after this test empties it again (a failure there is reported as an error)


@on_sqlite
@pytest.mark.django_db
def test_sqlite_flush_sql_drops_and_recreates_the_triggers_around_the_delete():
    statements = sql_flush(no_style(), connection)
    delete = next(i for i, s in enumerate(statements) if s.startswith("DELETE") and TABLE in s)
    drops = [i for i, s in enumerate(statements) if s.startswith("DROP TRIGGER")]
    creates = [i for i, s in enumerate(statements) if s.startswith("CREATE TRIGGER")]
    assert len(drops) == len(creates) == 2
    assert max(drops) < delete < min(creates)
    # flushing other tables only leaves the triggers alone; a cascade to the audit table does not
    only_runs = connection.ops.sql_flush(no_style(), ["stepkit_django_pipelinerun"])
    assert not any("TRIGGER" in s for s in only_runs)
    cascaded = connection.ops.sql_flush(no_style(), ["stepkit_django_pipelinerun"], allow_cascade=True)
    assert sum("TRIGGER" in s for s in cascaded) == 4


@on_sqlite
@pytest.mark.django_db(transaction=True)
def test_migration_0008_goes_back_and_forth():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([("stepkit_django", "0007_reassign_permission")])
        assert sqlite_triggers() == set()
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        assert sqlite_triggers() == TRIGGERS
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)


# -- stepkit_audit_grants ------------------------------------------------------------------------------


def grants(*args):
    out = io.StringIO()
    call_command("stepkit_audit_grants", *args, stdout=out)
    return out.getvalue()


def apply(cursor, script):
    """Run the printed script as psql would with ON_ERROR_STOP: its transaction is rolled back on an error."""
    try:
        cursor.execute(script)
    except DatabaseError:
        cursor.execute("ROLLBACK")
        raise


@on_sqlite
def test_the_grants_command_is_for_postgresql():
    with pytest.raises(CommandError, match="PostgreSQL"):
        grants("--role", "app")


@pytest.mark.postgres
def test_the_grants_command_defaults_to_the_role_of_the_default_connection():
    from django.conf import settings

    user = settings.DATABASES["default"]["USER"]
    sql = grants()
    assert f'FROM "{user}"' in sql and f'TO "{user}"' in sql
    assert f"TABLE {TABLE}" in sql or f'TABLE "{TABLE}"' in sql


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_printed_grants_leave_the_role_unable_to_rewrite_the_trail():
    role = f'stepkit test\'s "app" {uuid.uuid4().hex[:8]}'  # quotes of both kinds: quoted properly
    quoted = '"' + role.replace('"', '""') + '"'
    event = an_event()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {quoted} NOLOGIN")
        try:
            apply(cursor, grants("--role", role))  # as the superuser the tests connect as
            cursor.execute(f"SET ROLE {quoted}")
            try:
                cursor.execute(f"SELECT note FROM {TABLE} WHERE id = %s", [event.pk])
                assert cursor.fetchone() == ("original",)
                cursor.execute(
                    f"INSERT INTO {TABLE} (run_id, pipeline_name, action, timestamp, data, note) "
                    "VALUES (%s, 'audited', 'run_completed', now(), '{}', 'by the app') RETURNING id",
                    [event.run_id],
                )
                inserted = cursor.fetchone()[0]
                for refused in (
                    f"UPDATE {TABLE} SET note = 'rewritten' WHERE id = {inserted}",
                    f"DELETE FROM {TABLE} WHERE id = {inserted}",
                    f"TRUNCATE {TABLE}",
                    f"TRUNCATE {TABLE} CASCADE",
                ):
                    with pytest.raises(DatabaseError, match="permission denied"):
                        cursor.execute(refused)
            finally:
                cursor.execute("RESET ROLE")
            assert list(AuditEvent.objects.order_by("id").values_list("note", flat=True)) == ["original", "by the app"]
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute(f"DROP OWNED BY {quoted}")
            cursor.execute(f"DROP ROLE {quoted}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_printed_grants_refuse_to_pretend_for_a_role_that_owns_the_table():
    role = f"stepkit_owner_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" NOLOGIN')
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", [TABLE])
        owner = cursor.fetchone()[0]
        try:
            cursor.execute(f'ALTER TABLE {TABLE} OWNER TO "{role}"')
            with pytest.raises(DatabaseError, match="owns"):
                apply(cursor, grants("--role", role))
        finally:
            cursor.execute(f'REASSIGN OWNED BY "{role}" TO "{owner}"')  # the table goes back first
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", [TABLE])
        assert cursor.fetchone()[0] == owner


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_printed_grants_refuse_a_superuser():
    with pytest.raises(DatabaseError, match="superuser"), connection.cursor() as cursor:
        apply(cursor, grants())  # the tests connect as a superuser
