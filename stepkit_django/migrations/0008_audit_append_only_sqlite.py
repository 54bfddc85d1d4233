"""On SQLite, refuse UPDATE and DELETE of audit events in the database itself, as 0004 does on PostgreSQL.

Also makes the guarded queryset the audit events' base manager (``Meta.base_manager_name``),
and records the audit actions added since 0007 (``AuditEvent.action``'s choices: no SQL).

Django's flush still empties the table: ``stepkit_django.signal_handlers`` makes the flush drop
and re-create these triggers in its own transaction. A later migration that rebuilds the
table on SQLite (SQLite's way of altering most columns) drops its triggers with the old
table: such a migration must create them again (``tests/runs/test_audit_trail.py`` checks that
they exist after all migrations).
"""

from django.db import migrations, models

TRIGGERS = {
    "stepkit_django_audit_no_update": "UPDATE",
    "stepkit_django_audit_no_delete": "DELETE",
}

CREATE = """
CREATE TRIGGER {name}
BEFORE {operation} ON stepkit_django_auditevent
BEGIN
    SELECT RAISE(ABORT, 'stepkit_django audit events are append-only: {operation} refused');
END
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        for name, operation in TRIGGERS.items():
            schema_editor.execute(CREATE.format(name=name, operation=operation))


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        for name in TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("stepkit_django", "0007_reassign_permission")]

    operations = [
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
                ],
                max_length=32,
                verbose_name="action",
            ),
        ),
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "base_manager_name": "objects",
                "ordering": ["timestamp", "id"],
                "verbose_name": "audit event",
                "verbose_name_plural": "audit events",
            },
        ),
        migrations.RunPython(create, drop),
    ]
