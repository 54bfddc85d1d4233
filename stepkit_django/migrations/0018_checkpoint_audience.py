"""Who may see a checkpoint, as one column of the queue index: ``Checkpoint.audience``.

* ``Audience``: one row per distinct set of assignees (users and groups), with the sets' members;
* ``Checkpoint.audience``: the audience of the checkpoint's assignees (None: assigned to nobody, or none
  left), filled here for the existing checkpoints, in batches of :data:`BATCH` (one transaction each);
* ``stepkit_cp_queue`` and ``stepkit_cp_decided`` re-created with the audience among their columns, so
  that a reviewer's queue and overview are read from the indexes alone (see
  ``docs/explanation/performance.md``).

On PostgreSQL the indexes are dropped and built with ``CONCURRENTLY`` (the migration is not atomic), as in
0016. The backfill reads the assignment tables; a checkpoint assigned while it runs gets its audience
from the application (``stepkit_django.audiences``), which is installed with the same release. If it is
interrupted, run ``migrate`` again: a batch is committed whole or not at all, and the backfill starts over.
"""

import hashlib
from collections import defaultdict
from importlib import import_module
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models, transaction

AddIndexConcurrently = import_module("stepkit_django.migrations.0016_queue_indexes").AddIndexConcurrently

#: Checkpoints per transaction of the backfill.
BATCH = 5000


class RemoveIndexConcurrently(migrations.RemoveIndex):
    """``RemoveIndex``, dropped without blocking writes on PostgreSQL (``DROP INDEX CONCURRENTLY``)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            concurrently = schema_editor.connection.vendor == "postgresql"
            schema_editor.remove_index(model, index, **({"concurrently": True} if concurrently else {}))

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            concurrently = schema_editor.connection.vendor == "postgresql"
            schema_editor.add_index(model, index, **({"concurrently": True} if concurrently else {}))


def _key(user_ids: Any, group_ids: Any) -> str:
    """As ``stepkit_django.audiences.key_of`` (copied: a migration must not change with the code)."""
    users = ",".join(sorted({str(pk) for pk in user_ids}, key=lambda text: (len(text), text)))
    groups = ",".join(sorted({str(pk) for pk in group_ids}, key=lambda text: (len(text), text)))
    return hashlib.sha256(f"users:{users};groups:{groups}".encode()).hexdigest()


def fill_audiences(apps: Any, schema_editor: Any) -> None:
    """Give each checkpoint created with assignees the audience of those it has (batched by id)."""
    checkpoint = apps.get_model("stepkit_django", "Checkpoint")
    audience = apps.get_model("stepkit_django", "Audience")
    through_users = checkpoint.assigned_users.through
    through_groups = checkpoint.assigned_groups.through
    found: dict[str, int] = {}
    last = None
    while True:
        rows = checkpoint.objects.filter(assigned=True).order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        ids = list(rows.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        last = ids[-1]
        users: dict[Any, set[int]] = defaultdict(set)
        groups: dict[Any, set[int]] = defaultdict(set)
        for cp, pk in through_users.objects.filter(checkpoint_id__in=ids).values_list("checkpoint_id", "user_id"):
            users[cp].add(pk)
        for cp, pk in through_groups.objects.filter(checkpoint_id__in=ids).values_list("checkpoint_id", "group_id"):
            groups[cp].add(pk)
        targets: dict[int, list[Any]] = defaultdict(list)
        with transaction.atomic():
            for cp in ids:
                if not users[cp] and not groups[cp]:
                    continue  # none left: no audience (fail closed)
                key = _key(users[cp], groups[cp])
                if key not in found:
                    row, created = audience.objects.get_or_create(key=key)
                    if created:
                        row.users.set(users[cp])
                        row.groups.set(groups[cp])
                    found[key] = row.pk
                targets[found[key]].append(cp)
            for audience_id, cps in targets.items():
                checkpoint.objects.filter(pk__in=cps).update(audience_id=audience_id)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("stepkit_django", "0017_audit_chain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Audience",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(editable=False, max_length=64, unique=True, verbose_name="key")),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name="created"),
                ),
                (
                    "groups",
                    models.ManyToManyField(
                        blank=True, related_name="stepkit_audiences", to="auth.group", verbose_name="groups"
                    ),
                ),
                (
                    "users",
                    models.ManyToManyField(
                        blank=True, related_name="stepkit_audiences", to=settings.AUTH_USER_MODEL, verbose_name="users"
                    ),
                ),
            ],
            options={"verbose_name": "audience", "verbose_name_plural": "audiences"},
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="audience",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="checkpoints",
                to="stepkit_django.audience",
                verbose_name="audience",
            ),
        ),
        migrations.RunPython(fill_audiences, migrations.RunPython.noop),
        RemoveIndexConcurrently(model_name="checkpoint", name="stepkit_cp_queue"),
        AddIndexConcurrently(
            model_name="checkpoint",
            index=models.Index(
                fields=[
                    "status",
                    "pipeline_name",
                    "step",
                    "created_at",
                    "permission",
                    "assigned",
                    "audience",
                    "run",
                    "id",
                ],
                name="stepkit_cp_queue",
            ),
        ),
        RemoveIndexConcurrently(model_name="checkpoint", name="stepkit_cp_decided"),
        AddIndexConcurrently(
            model_name="checkpoint",
            index=models.Index(
                condition=models.Q(("decided_at__isnull", False)),
                fields=["decided_at", "status", "permission", "assigned", "audience", "run", "id"],
                name="stepkit_cp_decided",
            ),
        ),
    ]
