"""Indexes for a queue of millions: the overview's decisions per day, and the audit trail in time order.

* ``stepkit_cp_decided``: the checkpoints by decision time (partial: decided ones only), with the columns
  the queue's visibility filter reads, so that the overview counts a month of decisions from the index.
* ``stepkit_event_time``: the audit events by ``(timestamp, id)``, the order the API's ``GET events/``
  walks by cursor.

On PostgreSQL both are built with ``CREATE INDEX CONCURRENTLY`` (the migration is not atomic): a plain
``CREATE INDEX`` holds a lock that blocks every write to the table while it reads all of it, and the
audit table takes a write per step of every run (building the trail's index on 10,000,000 events took
about a minute on the development machine). If a concurrent build fails (a deadlock, a unique
violation, an interrupted migrate), PostgreSQL leaves an invalid index behind: ``DROP INDEX`` it and
run ``migrate`` again. Other databases build them as usual.
"""

from typing import Any

from django.db import migrations, models


class AddIndexConcurrently(migrations.AddIndex):
    """``AddIndex``, built without blocking writes on PostgreSQL (``CREATE INDEX CONCURRENTLY``).

    Not ``django.contrib.postgres.operations.AddIndexConcurrently``, which fails on other databases.
    """

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.add_index(model, self.index, concurrently=True)
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.remove_index(model, self.index, concurrently=True)
            else:
                schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stepkit_django", "0015_retention"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="checkpoint",
            index=models.Index(
                condition=models.Q(("decided_at__isnull", False)),
                fields=["decided_at", "status", "permission", "assigned", "run", "id"],
                name="stepkit_cp_decided",
            ),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["timestamp", "id"], name="stepkit_event_time"),
        ),
    ]
