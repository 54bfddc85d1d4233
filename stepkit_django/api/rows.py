"""The API's hot representations, built without serializer instances.

The queue page and the answer to a decision are the API's most frequent
responses. They are built here as plain dicts in exactly the shapes of
``CheckpointSerializer`` and ``CheckpointDetailSerializer``, which keep
documenting them (OpenAPI) and are tested to produce the same output.
Instantiating a DRF serializer deep-copies its declared fields: for the detail
shape that cost more than the decision's own SQL. Measured on 2026-12-01 (the demo's
checkpoints, SQLite, queries included): ``CheckpointDetailSerializer(cp).data`` 2.0 ms,
:func:`detail` 0.6 ms per checkpoint, so this copy stays (the rule: drop it once the
serializer costs less than 1 ms per request).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.serializers import DateTimeField

from .. import choices, quorum
from ..describe import remaining_steps
from ..models import Approval, Checkpoint
from ..revisions import Revision, history
from ..status import CheckpointStatus

#: The columns of a queue row (``values()``), besides the assignments.
QUEUE_FIELDS = (
    "id",
    "run_id",
    "pipeline_name",
    "step",
    "title",
    "summary",
    "review",
    "status",
    "claimed_by_id",
    "claimed_by__username",
    "claimed_at",
    "approvals_total",
    "decided_by_id",
    "decided_by__username",
    "decided_at",
    "expires_at",
    "version",
    "created_at",
    "updated_at",
    "assigned",
)

_DATETIME = DateTimeField()


def when(value: Any) -> Any:
    """A datetime as DRF renders it (the ``DATETIME_FORMAT`` API setting, the current time zone)."""
    return None if value is None else _DATETIME.to_representation(value)


def user_ref(user: Any) -> dict[str, Any] | None:
    """``UserRefSerializer``'s shape."""
    return None if user is None else {"id": user.pk, "username": str(user.get_username())}


def queue_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``values()`` rows of the queue, in the shape of CheckpointSerializer.

    Two more queries read the assignments, unless no checkpoint of the page may be
    assigned (``Checkpoint.assigned`` is false only for one created assigned to nobody).
    """
    users: dict[Any, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    groups: dict[Any, list[str]] = {row["id"]: [] for row in rows}
    ids = [row["id"] for row in rows if row["assigned"]]
    if ids:
        through_users = Checkpoint.assigned_users.through.objects.filter(checkpoint_id__in=ids)
        for cp, uid, name in through_users.values_list("checkpoint_id", "user_id", "user__username"):
            users[cp].append({"id": uid, "username": name})
        through_groups = Group.objects.filter(stepkit_assigned_checkpoints__in=ids)
        for cp, name in through_groups.values_list("stepkit_assigned_checkpoints", "name"):
            groups[cp].append(name)

    def user(pk: Any, name: Any) -> dict[str, Any] | None:
        return None if pk is None else {"id": pk, "username": name}

    progress = _group_progress([row for row in rows if (row["review"] or {}).get("approvals_by_group")])

    return [
        {
            "id": str(row["id"]),
            "run": str(row["run_id"]),
            "pipeline": row["pipeline_name"],
            "step": row["step"],
            "title": row["title"],
            "summary": row["summary"],
            "status": row["status"],
            "assigned_users": users[row["id"]],
            "assigned_groups": groups[row["id"]],
            "claimed_by": user(row["claimed_by_id"], row["claimed_by__username"]),
            "claimed_at": when(row["claimed_at"]),
            "approvals_count": row["approvals_total"],
            "approvals_required": int((row["review"] or {}).get("approvals_required", 1)),
            "approvals_by_group": progress.get(row["id"], []),
            "decided_by": user(row["decided_by_id"], row["decided_by__username"]),
            "decided_at": when(row["decided_at"]),
            "expires_at": when(row["expires_at"]),
            "version": row["version"],
            "created_at": when(row["created_at"]),
            "updated_at": when(row["updated_at"]),
        }
        for row in rows
    ]


def _group_progress(rows: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    """Each per-group quorum's progress, by checkpoint id: one query, none without such rows."""
    if not rows:
        return {}
    given: dict[Any, list[str]] = {row["id"]: [] for row in rows}
    for checkpoint_id, group in Approval.objects.filter(checkpoint_id__in=list(given)).values_list(
        "checkpoint_id", "group"
    ):
        given[checkpoint_id].append(group)
    return {row["id"]: progress_rows(quorum.progress(row["review"], given[row["id"]])) for row in rows}


def progress_rows(groups: list[quorum.GroupProgress]) -> list[dict[str, Any]]:
    """``GroupProgressSerializer``'s shape."""
    return [{"group": g.group, "given": g.given, "required": g.required, "met": g.met} for g in groups]


def _assignments(checkpoint: Checkpoint) -> tuple[list[dict[str, Any] | None], list[str]]:
    # A checkpoint created assigned to nobody, and assigned to nobody since, has none to read.
    if not checkpoint.assigned:
        return [], []
    return [user_ref(u) for u in checkpoint.assigned_users.all()], [g.name for g in checkpoint.assigned_groups.all()]


def _approvals(checkpoint: Checkpoint) -> list[dict[str, Any]]:
    if checkpoint.status == CheckpointStatus.PENDING and checkpoint.approvals_required == 1:
        return []  # the first approval of such a checkpoint decides it
    username = f"user__{get_user_model().USERNAME_FIELD}"
    approvals = checkpoint.approvals.order_by("created_at", "pk").values_list(
        "user_id", username, "group", "created_at"
    )
    return [
        {"user": {"id": pk, "username": str(name)}, "group": group, "created_at": when(at)}
        for pk, name, group, at in approvals
    ]


def choices_of(checkpoint: Checkpoint) -> dict[str, Any]:
    """The choices fields of a checkpoint's detail."""
    review = checkpoint.review
    return {
        "choices": [{"key": key, "label": label} for key, label in choices.options(review)],
        "choice_key": review.get("choice_key") if review.get("choices") else None,
        "multiple_choices": bool(review.get("multiple")),
    }


def detail(checkpoint: Checkpoint, user: Any) -> dict[str, Any]:
    """``checkpoint`` in the shape of CheckpointDetailSerializer, its earlier revisions as ``user`` may see them.

    Reads the approvals and the assignments (at most three queries, none for a pending
    checkpoint that needs one approval and was created assigned to nobody), and the
    earlier revisions (one query, none for a first revision).
    """
    users, groups = _assignments(checkpoint)
    approvals = _approvals(checkpoint)
    review = checkpoint.review
    schema = review.get("schema")
    return {
        "id": str(checkpoint.pk),
        "run": str(checkpoint.run_id),
        "pipeline": checkpoint.pipeline_name,
        "step": checkpoint.step,
        "title": checkpoint.title,
        "summary": checkpoint.summary,
        "status": str(checkpoint.status),
        "assigned_users": users,
        "assigned_groups": groups,
        "claimed_by": user_ref(checkpoint.claimed_by) if checkpoint.claimed_by_id is not None else None,
        "claimed_at": when(checkpoint.claimed_at),
        "approvals_count": len(approvals),
        "approvals_required": checkpoint.approvals_required,
        "approvals_by_group": progress_rows(quorum.progress(review, [a["group"] for a in approvals]))
        if review.get("approvals_by_group")
        else [],
        "decided_by": user_ref(checkpoint.decided_by) if checkpoint.decided_by_id is not None else None,
        "decided_at": when(checkpoint.decided_at),
        "expires_at": when(checkpoint.expires_at),
        "version": checkpoint.version,
        "created_at": when(checkpoint.created_at),
        "updated_at": when(checkpoint.updated_at),
        "context": checkpoint.context,
        "override_data": checkpoint.override_data,
        "effective_context": checkpoint.effective_context,
        "editable": checkpoint.editable_keys,
        "schema": dict(schema) if schema is not None else None,
        "remaining_steps": remaining_steps(checkpoint.pipeline_name, checkpoint.position),
        "approvals": approvals,
        "comment": checkpoint.comment,
        **choices_of(checkpoint),
        "revision": checkpoint.revision,
        "revision_of": str(checkpoint.revision_of_id) if checkpoint.revision_of_id is not None else None,
        "revisions": revision_rows(checkpoint, user),
    }


def revision_rows(checkpoint: Checkpoint, user: Any) -> list[dict[str, Any]]:
    """The earlier revisions of ``checkpoint`` that ``user`` may see, in the shape of RevisionSerializer."""
    return [_revision(earlier) for earlier in history(checkpoint, user)]


def _revision(earlier: Revision) -> dict[str, Any]:
    checkpoint = earlier.checkpoint
    return {
        "id": str(checkpoint.pk),
        "revision": checkpoint.revision,
        "comment": checkpoint.comment,
        "decided_by": user_ref(checkpoint.decided_by) if checkpoint.decided_by_id is not None else None,
        "decided_at": when(checkpoint.decided_at),
        "effective_context": checkpoint.effective_context,
        "changes": earlier.changes,
    }
