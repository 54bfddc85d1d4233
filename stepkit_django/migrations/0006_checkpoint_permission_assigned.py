"""Store a checkpoint's review permission and whether it may be assigned as columns.

The queue of a reviewer filters on both for every candidate row: from the
``review`` JSON and the assignment tables they cost a read of each row and two
lookups; as columns at the end of the queue index, PostgreSQL counts the queue
from the index alone. Existing checkpoints are filled in from their review
settings and their assignments.
"""

from typing import Any

from django.conf import settings
from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce


def fill(apps: Any, schema_editor: Any) -> None:
    checkpoint = apps.get_model("stepkit_django", "Checkpoint")
    rows = checkpoint.objects.using(schema_editor.connection.alias)
    rows.update(permission=Coalesce(KT("review__permission"), Value("")))
    users = checkpoint.assigned_users.through.objects.filter(checkpoint_id=OuterRef("pk"))
    groups = checkpoint.assigned_groups.through.objects.filter(checkpoint_id=OuterRef("pk"))
    rows.filter(~Exists(users) & ~Exists(groups)).update(assigned=False)
    rows.filter(Q(Exists(users)) | Q(Exists(groups))).update(assigned=True)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("stepkit_django", "0005_audit_event_fk_indexes_covered"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="checkpoint",
            name="stepkit_cp_queue",
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="assigned",
            field=models.BooleanField(default=True, editable=False, verbose_name="may be assigned"),
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="permission",
            field=models.CharField(
                blank=True, default="", editable=False, max_length=255, verbose_name="review permission"
            ),
        ),
        # The index before the data: PostgreSQL refuses CREATE INDEX on a table with pending trigger events.
        migrations.AddIndex(
            model_name="checkpoint",
            index=models.Index(
                fields=["status", "pipeline_name", "step", "created_at", "permission", "assigned", "run", "id"],
                name="stepkit_cp_queue",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
