"""The audit trail's hash chain: ``AuditEvent.chain`` and ``data_digest``, ``PipelineRun.audit_head``.

The events written before this migration are chained by it, run by run in id order (the order the chain
has), and each run's ``audit_head`` set to its last link; they are updated as a purge updates them (the
triggers of 0015 let it change these new columns), before the triggers change. So after it every event
has a chain, and ``stepkit_verify`` reports any event without one as a problem. The append-only triggers
are re-created so
that the purge, the one writer allowed to change an event, cannot change these two columns either:

* PostgreSQL: the trigger function of 0015, with ``chain`` and ``data_digest`` among the columns an
  UPDATE under ``stepkit.purge = 'on'`` must leave as they are;
* SQLite: the UPDATE trigger of 0015 (same name), with the same two columns.

The columns are nullable and have no default, so SQLite adds them with ``ALTER TABLE ... ADD COLUMN``
rather than rebuilding the table: the triggers of 0008 and 0015 are kept.
"""

from django.db import migrations, models

#: How many events the migration reads and updates at a time.
BATCH_SIZE = 500

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION stepkit_django_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('stepkit.purge', true) = 'on'
        AND NEW.id = OLD.id AND NEW.run_id = OLD.run_id
        AND NEW.checkpoint_id IS NOT DISTINCT FROM OLD.checkpoint_id
        AND NEW.pipeline_name = OLD.pipeline_name AND NEW.action = OLD.action
        AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id AND NEW.timestamp = OLD.timestamp
        AND NEW.note = OLD.note
        AND NEW.chain IS NOT DISTINCT FROM OLD.chain AND NEW.data_digest IS NOT DISTINCT FROM OLD.data_digest THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'stepkit_django audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

PG_FUNCTION_BEFORE = """
CREATE OR REPLACE FUNCTION stepkit_django_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('stepkit.purge', true) = 'on'
        AND NEW.id = OLD.id AND NEW.run_id = OLD.run_id
        AND NEW.checkpoint_id IS NOT DISTINCT FROM OLD.checkpoint_id
        AND NEW.pipeline_name = OLD.pipeline_name AND NEW.action = OLD.action
        AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id AND NEW.timestamp = OLD.timestamp
        AND NEW.note = OLD.note THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'stepkit_django audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

SQLITE_UPDATE = """
CREATE TRIGGER stepkit_django_audit_no_update
BEFORE UPDATE ON stepkit_django_auditevent
WHEN NOT EXISTS (SELECT 1 FROM stepkit_django_audit_purge)
    OR NEW.id IS NOT OLD.id OR NEW.run_id IS NOT OLD.run_id OR NEW.checkpoint_id IS NOT OLD.checkpoint_id
    OR NEW.pipeline_name IS NOT OLD.pipeline_name OR NEW.action IS NOT OLD.action
    OR NEW.actor_id IS NOT OLD.actor_id OR NEW.timestamp IS NOT OLD.timestamp OR NEW.note IS NOT OLD.note
    OR NEW.chain IS NOT OLD.chain OR NEW.data_digest IS NOT OLD.data_digest
BEGIN
    SELECT RAISE(ABORT, 'stepkit_django audit events are append-only: UPDATE refused');
END
"""

SQLITE_UPDATE_BEFORE = """
CREATE TRIGGER stepkit_django_audit_no_update
BEFORE UPDATE ON stepkit_django_auditevent
WHEN NOT EXISTS (SELECT 1 FROM stepkit_django_audit_purge)
    OR NEW.id IS NOT OLD.id OR NEW.run_id IS NOT OLD.run_id OR NEW.checkpoint_id IS NOT OLD.checkpoint_id
    OR NEW.pipeline_name IS NOT OLD.pipeline_name OR NEW.action IS NOT OLD.action
    OR NEW.actor_id IS NOT OLD.actor_id OR NEW.timestamp IS NOT OLD.timestamp OR NEW.note IS NOT OLD.note
BEGIN
    SELECT RAISE(ABORT, 'stepkit_django audit events are append-only: UPDATE refused');
END
"""


def _triggers(function: str, sqlite: str):  # type: ignore[no-untyped-def]
    def apply(apps, schema_editor):  # type: ignore[no-untyped-def]
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(function)
        elif vendor == "sqlite":
            schema_editor.execute("DROP TRIGGER IF EXISTS stepkit_django_audit_no_update")
            schema_editor.execute(sqlite)

    return apply


def _allow(cursor, on: bool) -> None:  # type: ignore[no-untyped-def]
    """Let this transaction update events, as the purge does (the triggers of 0015)."""
    if cursor.db.vendor == "postgresql":
        cursor.execute("SELECT set_config('stepkit.purge', %s, true)", ["on" if on else "off"])
    elif cursor.db.vendor == "sqlite":
        flag = "stepkit_django_audit_purge"
        cursor.execute(f"INSERT INTO {flag} (id) VALUES (1)" if on else f"DELETE FROM {flag}")


def chain_existing(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Chain every event written before this migration, run by run in id order, and set the runs' heads."""
    from stepkit_django import chain

    db = schema_editor.connection.alias
    events = apps.get_model("stepkit_django", "AuditEvent")._base_manager.using(db)
    runs = apps.get_model("stepkit_django", "PipelineRun")._base_manager.using(db)
    if not events.exists():
        return
    key = chain.signing_key()
    heads: dict[object, bytes] = {}
    with schema_editor.connection.cursor() as cursor:
        _allow(cursor, True)
        try:
            last = None
            while True:
                page = events.order_by("pk") if last is None else events.filter(pk__gt=last).order_by("pk")
                batch = list(page[:BATCH_SIZE])
                if not batch:
                    break
                for event in batch:
                    event.data_digest, text = chain.seal(
                        key,
                        run=event.run_id,
                        checkpoint=event.checkpoint_id,
                        pipeline_name=event.pipeline_name,
                        action=event.action,
                        actor=event.actor_id,
                        timestamp=event.timestamp,
                        note=event.note,
                        data=event.data if isinstance(event.data, dict) else {},
                    )
                    event.chain = heads[event.run_id] = chain.link(key, heads.get(event.run_id), text)
                events.bulk_update(batch, ["chain", "data_digest"])
                last = batch[-1].pk
        finally:
            _allow(cursor, False)
    for run_id, head in heads.items():
        runs.filter(pk=run_id).update(audit_head=head)


class Migration(migrations.Migration):
    dependencies = [("stepkit_django", "0016_queue_indexes")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="chain",
            field=models.BinaryField(blank=True, editable=False, null=True, verbose_name="chain"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="data_digest",
            field=models.BinaryField(blank=True, editable=False, null=True, verbose_name="data digest"),
        ),
        migrations.AddField(
            model_name="pipelinerun",
            name="audit_head",
            field=models.BinaryField(blank=True, editable=False, null=True, verbose_name="audit trail head"),
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.RunPython(
            _triggers(PG_FUNCTION, SQLITE_UPDATE), _triggers(PG_FUNCTION_BEFORE, SQLITE_UPDATE_BEFORE)
        ),
    ]
