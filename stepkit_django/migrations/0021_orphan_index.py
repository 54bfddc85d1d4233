"""A reassigner's orphans found without scanning the queue: ``stepkit_cp_unheld`` and its statistics.

An orphan is assigned and has no assignee left (see ``permissions._orphan_parts``). Those without an
audience are found from ``stepkit_cp_unheld``, a partial index of the checkpoints with ``assigned`` and
no audience (a few rows: orphans, and checkpoints whose audience is not computed yet). On PostgreSQL
the index is built with ``CREATE INDEX CONCURRENTLY`` (the migration is not atomic; an interrupted build
leaves an invalid index: ``DROP INDEX`` it and migrate again), and extended statistics on
``(assigned, audience_id)`` (``stepkit_cp_assigned_audience``, most common values) tell the planner how
rare that pair is: half the checkpoints are unassigned (no audience), half assigned (an audience), and
without them it estimates a quarter of the table, and hashes every assignment row to check the orphans
(350 ms at 1,000,000 checkpoints, against 6 ms). ``ANALYZE`` fills them.
"""

from importlib import import_module
from typing import Any

from django.db import migrations, models

AddIndexConcurrently = import_module("stepkit_django.migrations.0016_queue_indexes").AddIndexConcurrently

STATISTICS = "stepkit_cp_assigned_audience"


def create_statistics(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (mcv) ON assigned, audience_id FROM stepkit_django_checkpoint"
    )
    schema_editor.execute("ANALYZE stepkit_django_checkpoint")


def drop_statistics(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stepkit_django", "0020_event_partial_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="checkpoint",
            index=models.Index(
                condition=models.Q(("assigned", True), ("audience__isnull", True)),
                fields=["status", "permission", "id"],
                name="stepkit_cp_unheld",
            ),
        ),
        migrations.RunPython(create_statistics, drop_statistics),
    ]
