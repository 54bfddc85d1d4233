"""Give each checkpoint a title and a summary, the first things a reviewer reads in the queue.

``Review(title=..., summary=...)`` is filled in from the context when a run pauses
and stored in these columns. Existing checkpoints keep the free-form title of
their review settings, or get the pipeline's name and step, humanised (as
``stepkit_django.review_spec.default_title`` does; copied here so that this
migration does not change with it), and an empty summary.

Under "All", the queue lists pending items first: an index on that order
(``stepkit_cp_pending_first``) lets the database read the first page from it
instead of sorting every checkpoint.

The queue's search looks inside titles and summaries (``icontains``). On
PostgreSQL, trigram GIN indexes (the ``pg_trgm`` extension, which a database
owner may create since PostgreSQL 13) serve that search; where the extension
cannot be created the indexes are left out and the search reads the table.
Other databases have no such index.
"""

from typing import Any

from django.conf import settings
from django.db import DatabaseError, migrations, models, transaction
from django.db.models import Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Left

import stepkit_django.models

TRIGRAM_INDEXES = {
    # The expressions Django writes for ``title__icontains`` and ``summary__icontains`` on PostgreSQL.
    "stepkit_cp_title_trgm": "UPPER((title)::text)",
    "stepkit_cp_summary_trgm": "UPPER((summary)::text)",
}


def add_trigram_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return  # not allowed here: the search works without the indexes, reading the table
    for name, expression in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON stepkit_django_checkpoint USING gin (({expression}) gin_trgm_ops)"
        )


def drop_trigram_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name in TRIGRAM_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def _humanise(name: str) -> str:
    words = " ".join(name.replace("_", " ").replace("-", " ").split())
    return words[:1].upper() + words[1:]


def _default_title(pipeline: str, step: str) -> str:
    where = " / ".join(_humanise(part).lower() for part in step.split("/") if part)
    title = f"{_humanise(pipeline)}: {where}" if where else _humanise(pipeline)
    return title if len(title) <= 200 else title[:199].rstrip() + "…"


def fill(apps: Any, schema_editor: Any) -> None:
    checkpoint = apps.get_model("stepkit_django", "Checkpoint")
    rows = checkpoint.objects.using(schema_editor.connection.alias)
    named = Q(review__has_key="title") & ~Q(review__title="")
    rows.filter(named).update(title=Left(KT("review__title"), 200))
    untitled = rows.filter(title="")
    # One UPDATE per pipeline and step, however many checkpoints they have.
    for pipeline, step in untitled.values_list("pipeline_name", "step").distinct().order_by():
        untitled.filter(pipeline_name=pipeline, step=step).update(title=Value(_default_title(pipeline, step)))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("stepkit_django", "0008_audit_append_only_sqlite"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="checkpoint",
            options={
                "ordering": ["created_at"],
                "permissions": [
                    ("review_checkpoint", "Can review checkpoints"),
                    ("reassign_checkpoint", "Can reassign checkpoints to other reviewers"),
                ],
                "verbose_name": "review item",
                "verbose_name_plural": "review items",
            },
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="summary",
            field=models.JSONField(
                blank=True, default=dict, encoder=stepkit_django.models.TextJSONEncoder, verbose_name="summary"
            ),
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="title",
            field=models.CharField(blank=True, default="", max_length=200, verbose_name="title"),
        ),
        migrations.AlterField(
            model_name="checkpoint",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="deadline"),
        ),
        migrations.AlterField(
            model_name="checkpoint",
            name="step",
            field=models.CharField(
                help_text="The step of the pipeline that waits for review.", max_length=500, verbose_name="step"
            ),
        ),
        migrations.AddIndex(
            model_name="checkpoint",
            index=models.Index(fields=["status", "title"], name="stepkit_cp_title"),
        ),
        migrations.AddIndex(
            model_name="checkpoint",
            index=models.Index(
                models.Case(models.When(status="pending", then=models.Value(0)), default=models.Value(1)),
                models.F("created_at"),
                models.OrderBy(models.F("id"), descending=True),
                name="stepkit_cp_pending_first",
            ),
        ),
        # The indexes before the data: PostgreSQL refuses CREATE INDEX on a table with pending trigger events.
        migrations.RunPython(add_trigram_indexes, drop_trigram_indexes),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
