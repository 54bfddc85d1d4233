"""A run re-run from a checkpoint (``review.rerun_from``) points to it: ``PipelineRun.forked_from``.

Also records the new audit action ``run_forked`` (``AuditEvent.action``'s choices: no SQL, so the
audit table is not rebuilt on SQLite and keeps its append-only triggers).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("stepkit_django", "0009_checkpoint_title_summary"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipelinerun",
            name="forked_from",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reruns",
                to="stepkit_django.checkpoint",
                verbose_name="rerun of",
            ),
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
                ],
                max_length=32,
                verbose_name="action",
            ),
        ),
    ]
