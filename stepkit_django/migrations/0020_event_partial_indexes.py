"""The audit events' checkpoint and actor indexes become partial: rows with a checkpoint, rows with an actor.

A step's ``step_completed`` event has neither (the system wrote it, outside any checkpoint), and every run
writes one per step: with full indexes each of those INSERTs also wrote a NULL entry into both, which no
lookup reads (``checkpoint.events``, a user's events, the deletion checks of ``PROTECT`` all compare with a
value, which implies NOT NULL, so PostgreSQL and SQLite use the partial indexes for them). Two index writes
fewer per step pay for the trail's time index (0016).

The new indexes are built first, then the old ones dropped, both ``CONCURRENTLY`` on PostgreSQL (the
migration is not atomic; 0016 says what to do if a concurrent build fails). Only the checkpoint's index is
dropped, not its foreign key constraint: Django's ``AlterField`` would drop and re-validate it, a scan of the
whole audit table.
"""

import importlib
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

AddIndexConcurrently = importlib.import_module("stepkit_django.migrations.0016_queue_indexes").AddIndexConcurrently


class RemoveIndexConcurrently(migrations.RemoveIndex):
    """``RemoveIndex``, without blocking writes on PostgreSQL (``DROP INDEX CONCURRENTLY``)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.remove_index(model, index, **concurrently)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.add_index(model, index, **concurrently)


def _checkpoint_indexes(schema_editor: Any, table: str) -> list[str]:
    """The plain single-column indexes on ``checkpoint_id`` but the new partial one (Django's FK index)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and not info["primary_key"]
        and not info["unique"]
        and not info.get("foreign_key")
        and info["columns"] == ["checkpoint_id"]
        and name != "stepkit_event_checkpoint"
    ]


def drop_checkpoint_index(apps: Any, schema_editor: Any) -> None:
    table = apps.get_model("stepkit_django", "AuditEvent")._meta.db_table
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for name in _checkpoint_indexes(schema_editor, table):
        schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}")


def create_checkpoint_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("stepkit_django", "AuditEvent")
    schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field("checkpoint")]))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stepkit_django", "0019_pending_counts"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)),
                fields=["actor", "timestamp"],
                name="stepkit_event_by_actor",
            ),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("checkpoint__isnull", False)),
                fields=["checkpoint"],
                name="stepkit_event_checkpoint",
            ),
        ),
        RemoveIndexConcurrently(model_name="auditevent", name="stepkit_event_actor"),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_checkpoint_index, create_checkpoint_index)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="checkpoint",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="events",
                        to="stepkit_django.checkpoint",
                        verbose_name="checkpoint",
                    ),
                ),
            ],
        ),
    ]
