"""A summary of the pending checkpoints, kept by a trigger on PostgreSQL: ``PendingCount``.

One row per pipeline, step, review permission, ``assigned``, audience (0: none) and slot, holding how
many pending checkpoints it counts. On PostgreSQL a row trigger on ``stepkit_django_checkpoint``
(``stepkit_pending_count``, after every insert, update and delete) moves a checkpoint's count from its
old row to its new one in the transaction of the change; an update that changes none of those columns
nor the status (a claim, an edit) writes nothing. The slot (0-7, at random) spreads the updates of one
kind of checkpoint over eight rows, so that concurrent pauses and decisions rarely wait for the same
row lock. The summary is filled here from the pending checkpoints, under a ``SHARE`` lock of the table
(writes wait for the fill, about a second for 200,000 pending items). A statement trigger after
``TRUNCATE`` of the checkpoints empties the summary (``stepkit_pending_count_truncate``). Other databases get the empty
table and no trigger: their queue counts itself (``stepkit_django.pending_counts``).
"""

from typing import Any

from django.db import migrations, models

TABLE = "stepkit_django_pendingcount"
KEY = "pipeline_name, step, permission, assigned, audience_id, slot"

FUNCTION = f"""
CREATE OR REPLACE FUNCTION stepkit_pending_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chosen smallint := floor(random() * 8)::smallint;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status AND OLD.pipeline_name = NEW.pipeline_name
       AND OLD.step = NEW.step AND OLD.permission = NEW.permission AND OLD.assigned = NEW.assigned
       AND OLD.audience_id IS NOT DISTINCT FROM NEW.audience_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'pending' THEN
        INSERT INTO {TABLE} ({KEY}, pending)
        VALUES (OLD.pipeline_name, OLD.step, OLD.permission, OLD.assigned, coalesce(OLD.audience_id, 0), chosen, -1)
        ON CONFLICT ON CONSTRAINT stepkit_pending_count_key DO UPDATE SET pending = {TABLE}.pending - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'pending' THEN
        INSERT INTO {TABLE} ({KEY}, pending)
        VALUES (NEW.pipeline_name, NEW.step, NEW.permission, NEW.assigned, coalesce(NEW.audience_id, 0), chosen, 1)
        ON CONFLICT ON CONSTRAINT stepkit_pending_count_key DO UPDATE SET pending = {TABLE}.pending + 1;
    END IF;
    RETURN NULL;
END
$$;
"""

TRIGGER = """
CREATE TRIGGER stepkit_pending_count AFTER INSERT OR UPDATE OR DELETE ON stepkit_django_checkpoint
FOR EACH ROW EXECUTE FUNCTION stepkit_pending_count();
"""

# TRUNCATE fires no row trigger: the summary is emptied with the checkpoints (a restore, a test reset).
TRUNCATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION stepkit_pending_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE};
    RETURN NULL;
END
$$;
"""

TRUNCATE_TRIGGER = """
CREATE TRIGGER stepkit_pending_count_truncate AFTER TRUNCATE ON stepkit_django_checkpoint
FOR EACH STATEMENT EXECUTE FUNCTION stepkit_pending_count_truncate();
"""

FILL = f"""
INSERT INTO {TABLE} ({KEY}, pending)
SELECT pipeline_name, step, permission, assigned, coalesce(audience_id, 0), 0, count(*)
FROM stepkit_django_checkpoint WHERE status = 'pending'
GROUP BY pipeline_name, step, permission, assigned, coalesce(audience_id, 0);
"""


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("LOCK TABLE stepkit_django_checkpoint IN SHARE MODE")
    schema_editor.execute(FUNCTION)
    schema_editor.execute(TRIGGER)
    schema_editor.execute(TRUNCATE_FUNCTION)
    schema_editor.execute(TRUNCATE_TRIGGER)
    schema_editor.execute(f"DELETE FROM {TABLE}")
    schema_editor.execute(FILL)


def uninstall(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS stepkit_pending_count_truncate ON stepkit_django_checkpoint")
    schema_editor.execute("DROP FUNCTION IF EXISTS stepkit_pending_count_truncate()")
    schema_editor.execute("DROP TRIGGER IF EXISTS stepkit_pending_count ON stepkit_django_checkpoint")
    schema_editor.execute("DROP FUNCTION IF EXISTS stepkit_pending_count()")


class Migration(migrations.Migration):
    dependencies = [
        ("stepkit_django", "0018_checkpoint_audience"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("pipeline_name", models.CharField(editable=False, max_length=200)),
                ("step", models.CharField(editable=False, max_length=500)),
                ("permission", models.CharField(editable=False, max_length=255)),
                ("assigned", models.BooleanField(editable=False)),
                ("audience_id", models.BigIntegerField(editable=False)),
                ("slot", models.SmallIntegerField(editable=False)),
                ("pending", models.BigIntegerField(default=0, editable=False)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("pipeline_name", "step", "permission", "assigned", "audience_id", "slot"),
                        name="stepkit_pending_count_key",
                    )
                ],
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
