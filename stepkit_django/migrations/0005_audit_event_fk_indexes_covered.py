"""Drop the audit events' single-column indexes on run and actor.

The composite indexes (run, timestamp) and (actor, timestamp) lead with those
columns and serve their lookups; every index costs a write per event, and a run
writes one event per step. Only the indexes are dropped: the foreign key
constraints stay (Django's AlterField would drop and re-validate them, a scan
of the whole audit table).
"""

from collections.abc import Iterator
from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

COLUMNS = ("run_id", "actor_id")


def single_column_indexes(schema_editor: Any, table: str) -> Iterator[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        plain = info["index"] and not info["primary_key"] and not info["unique"] and not info.get("foreign_key")
        if plain and len(info["columns"]) == 1 and info["columns"][0] in COLUMNS:
            yield name


def drop_indexes(apps: Any, schema_editor: Any) -> None:
    table = apps.get_model("stepkit_django", "AuditEvent")._meta.db_table
    quote = schema_editor.quote_name
    for name in list(single_column_indexes(schema_editor, table)):
        schema_editor.execute(schema_editor.sql_delete_index % {"table": quote(table), "name": quote(name)})


def create_indexes(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("stepkit_django", "AuditEvent")
    for name in ("run", "actor"):
        field = model._meta.get_field(name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("stepkit_django", "0004_audit_append_only_trigger"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="actor",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="stepkit_audit_events",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="actor",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="events",
                        to="stepkit_django.pipelinerun",
                        verbose_name="run",
                    ),
                ),
            ],
        )
    ]
