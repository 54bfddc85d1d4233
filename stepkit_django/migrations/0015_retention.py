"""Retention: ``PipelineRun.purged_at``, the ``purged`` audit action, and triggers that let the purge alone through.

The audit trail stays append-only, except for one writer: :mod:`stepkit_django.retention`, which rewrites
the ``data`` of events (nothing else) inside a transaction that says so first.

* PostgreSQL: the trigger function of 0004 is replaced; an UPDATE passes only when the transaction-local
  setting ``stepkit.purge`` is ``'on'`` (``set_config('stepkit.purge', 'on', true)``, as ``SET LOCAL``)
  and every column but ``data`` keeps its value. DELETE is refused as before.
* SQLite: the UPDATE trigger of 0008 is re-created (same name) to pass only while the one-row table
  ``stepkit_django_audit_purge`` holds a row, which the purge writes and deletes in its own transaction
  (SQLite has one writer at a time, so no other connection writes meanwhile), and only for ``data``.
"""

from django.conf import settings
from django.db import migrations, models

PG_FUNCTION = """
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

PG_FUNCTION_BEFORE = """
CREATE OR REPLACE FUNCTION stepkit_django_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'stepkit_django audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

SQLITE_FLAG = "CREATE TABLE stepkit_django_audit_purge (id integer NOT NULL PRIMARY KEY CHECK (id = 1))"

SQLITE_UPDATE = """
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

SQLITE_UPDATE_BEFORE = """
CREATE TRIGGER stepkit_django_audit_no_update
BEFORE UPDATE ON stepkit_django_auditevent
BEGIN
    SELECT RAISE(ABORT, 'stepkit_django audit events are append-only: UPDATE refused');
END
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FLAG)
        schema_editor.execute("DROP TRIGGER IF EXISTS stepkit_django_audit_no_update")
        schema_editor.execute(SQLITE_UPDATE)


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION_BEFORE)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS stepkit_django_audit_no_update")
        schema_editor.execute(SQLITE_UPDATE_BEFORE)
        schema_editor.execute("DROP TABLE IF EXISTS stepkit_django_audit_purge")


class Migration(migrations.Migration):
    dependencies = [
        ("stepkit_django", "0014_notification_digest"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="pipelinerun",
            name="purged_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="data purged"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("run_started", "Run started"),
                    ("step_completed", "Step completed"),
                    ("paused", "Paused for review"),
                    ("claimed", "Claimed"),
                    ("released", "Released"),
                    ("reassigned", "Reassigned"),
                    ("edited", "Edited"),
                    ("approved", "Approved"),
                    ("rejected", "Rejected"),
                    ("expired", "Expired"),
                    ("escalated", "Escalated"),
                    ("resumed", "Resumed"),
                    ("run_completed", "Run completed"),
                    ("run_failed", "Run failed"),
                    ("run_cancelled", "Run cancelled"),
                    ("run_retried", "Run retried"),
                    ("run_recovered", "Run recovered after its worker stopped"),
                    ("approvals_voided", "Approvals voided by a change of the data"),
                    ("run_forked", "Re-run from a checkpoint"),
                    ("changes_requested", "Changes requested"),
                    ("purged", "Data purged"),
                ],
                max_length=32,
                verbose_name="action",
            ),
        ),
        migrations.AddIndex(
            model_name="pipelinerun",
            index=models.Index(
                condition=models.Q(("purged_at__isnull", True)),
                fields=["finished_at", "id"],
                name="stepkit_run_to_purge",
            ),
        ),
        migrations.RunPython(create, drop),
    ]
