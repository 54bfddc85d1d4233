"""Runs, checkpoints, approvals and the append-only audit trail.

State changes go through ``runner.py`` (running steps) and ``review.py`` (review
decisions); both change a row with one conditional UPDATE and write the audit
event in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.db.models import Case, Count, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import chain, permissions
from .exceptions import StepkitError
from .quorum import declared_or_none
from .status import AuditAction, CheckpointStatus, NotificationEvent, NotificationStatus, RunStatus, run_status_word

__all__ = [
    "PENDING_FIRST",
    "Approval",
    "Audience",
    "AuditEvent",
    "AuditTrailImmutable",
    "Checkpoint",
    "Notification",
    "PendingCount",
    "PipelineRun",
    "StepkitJSONEncoder",
    "TextJSONEncoder",
    "approvals_count",
    "chain_events",
    "locked_head",
    "seal_events",
]


class StepkitJSONEncoder(DjangoJSONEncoder):
    """Django's JSON encoder, refusing NaN and Infinity (PostgreSQL's jsonb refuses them too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(*args, **kwargs)


class TextJSONEncoder(StepkitJSONEncoder):
    """Writes characters as they are, not as ``\\u`` escapes: on SQLite, where JSON is stored as text, a search
    for "Müller" then finds it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ensure_ascii"] = False
        super().__init__(*args, **kwargs)


def _json_field(**kwargs: Any) -> models.JSONField[Any, Any]:
    kwargs.setdefault("encoder", StepkitJSONEncoder)
    return models.JSONField(**kwargs)


class PipelineRunQuerySet(models.QuerySet["PipelineRun"]):
    def visible_to(self, user: Any) -> PipelineRunQuerySet:
        """Runs the user started or has a checkpoint of in their queue; all for run managers."""
        return permissions.runs_for(self, user, Checkpoint.objects.for_user(user))  # type: ignore[return-value]


class PipelineRun(models.Model):
    """One execution of a registered pipeline, from its input to an end state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline_name = models.CharField(_("pipeline"), max_length=200, db_index=True)
    pipeline_version = models.PositiveIntegerField(_("pipeline version"), default=1)
    status = models.CharField(_("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input = _json_field(verbose_name=_("input"), default=dict, blank=True)
    #: The context after the last completed step (the nested pipeline's own context for a nested step).
    context = _json_field(verbose_name=_("context"), default=dict, blank=True)
    #: Contexts of the enclosing pipelines when the last completed step is nested; else empty.
    outer_contexts = _json_field(verbose_name=_("outer contexts"), default=list, blank=True)
    #: Position of the last completed step in the pipeline tree; empty before the first step.
    position = _json_field(verbose_name=_("position"), default=list, blank=True)
    current_step = models.CharField(_("last completed step"), max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stepkit_runs",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, null=True, blank=True, unique=True)
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    #: When the run's personal data was removed (stepkit_django.retention); None: not purged.
    purged_at = models.DateTimeField(_("data purged"), null=True, blank=True, editable=False)
    #: The process executing the run, and until when it holds it (renewed while steps run).
    lease_owner = models.CharField(_("lease owner"), max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)
    #: The checkpoint this run was re-run from (``review.rerun_from``); None for a run started anew.
    forked_from = models.ForeignKey(
        "Checkpoint",
        verbose_name=_("rerun of"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reruns",
    )
    #: The ``chain`` of the run's last audit event (:mod:`stepkit_django.chain`); None before its first.
    #: Written only with the events: ``save()`` leaves it out of its UPDATE.
    audit_head = models.BinaryField(_("audit trail head"), null=True, blank=True, editable=False)

    objects = PipelineRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("pipeline run")
        verbose_name_plural = _("pipeline runs")
        ordering: ClassVar = ["-created_at"]
        indexes: ClassVar = [
            models.Index(fields=["status", "pipeline_name", "created_at"], name="stepkit_run_queue"),
            models.Index(fields=["status", "lease_expires_at"], name="stepkit_run_lease"),
            # The purge's "ended before the cutoff, not purged yet": it shrinks as runs are purged.
            models.Index(
                fields=["finished_at", "id"], name="stepkit_run_to_purge", condition=Q(purged_at__isnull=True)
            ),
        ]
        permissions: ClassVar = [("manage_pipelinerun", "Can cancel and retry pipeline runs")]

    def __str__(self) -> str:
        return gettext("%(pipeline)s run %(id)s (%(status)s)") % {
            "pipeline": self.pipeline_name,
            "id": str(self.id)[:8],
            "status": run_status_word(self.status),
        }

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the run; an UPDATE leaves ``audit_head`` alone (only the events' writes move it, under the
        row's lock: a stale instance must not rewind it)."""
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "audit_head"
            ]
        super().save(*args, **kwargs)

    @property
    def is_finished(self) -> bool:
        return self.status in RunStatus.finished()


class Audience(models.Model):
    """One distinct set of assignees (users and groups), shared by every checkpoint assigned to that set.

    ``Checkpoint.audience`` points here so that the queue tells who may see a checkpoint from the queue
    index (``audience_id IN`` the few audiences of a user and their groups) rather than from a row per
    assignment. It holds groups, not their members: a change of membership counts at once. Kept by
    :mod:`stepkit_django.audiences` whenever an assignment changes; never edited by hand.
    """

    #: A digest of the sorted user and group ids (see :func:`stepkit_django.audiences.key_of`).
    key = models.CharField(_("key"), max_length=64, unique=True, editable=False)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="stepkit_audiences", verbose_name=_("users")
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="stepkit_audiences", verbose_name=_("groups"))
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("audience")
        verbose_name_plural = _("audiences")

    def __str__(self) -> str:
        return f"audience {self.pk}"


class PendingCount(models.Model):
    """How many checkpoints are pending per pipeline, step, permission, ``assigned`` and audience: a summary
    from which the queue's default views (pending, by pipeline and step) add up a reviewer's count.

    Kept on PostgreSQL by a trigger on the checkpoints' table, in the transaction of every change
    (migration 0019, :mod:`stepkit_django.pending_counts`); empty on other databases, which count the
    queue itself. ``audience_id`` is 0 for a checkpoint without an audience; ``slot`` spreads the
    updates of one kind of checkpoint over a few rows, so that concurrent pauses and decisions do not
    all wait for one row's lock. Never edited by hand.
    """

    pipeline_name = models.CharField(max_length=200, editable=False)
    step = models.CharField(max_length=500, editable=False)
    permission = models.CharField(max_length=255, editable=False)
    assigned = models.BooleanField(editable=False)
    audience_id = models.BigIntegerField(editable=False)
    slot = models.SmallIntegerField(editable=False)
    pending = models.BigIntegerField(default=0, editable=False)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["pipeline_name", "step", "permission", "assigned", "audience_id", "slot"],
                name="stepkit_pending_count_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_name} / {self.step}: {self.pending}"


class CheckpointQuerySet(models.QuerySet["Checkpoint"]):
    def pending(self) -> CheckpointQuerySet:
        return self.filter(status=CheckpointStatus.PENDING)

    def assigned_to(self, user: Any) -> CheckpointQuerySet:
        """Checkpoints assigned to ``user`` directly or through one of the user's groups."""
        return self.filter(Q(assigned_users=user) | Q(assigned_groups__in=Group.objects.filter(user=user))).distinct()

    def visible_to(self, user: Any) -> CheckpointQuerySet:
        """Checkpoints assigned so that ``user`` may see them (see :mod:`stepkit_django.permissions`).

        Superusers see everything. The review permission is checked per checkpoint by the services.
        """
        return permissions.reviewable_by(self, user)  # type: ignore[return-value]

    def for_user(self, user: Any) -> CheckpointQuerySet:
        """What ``user`` may see in the queue: checkpoints they may review, and those of runs they started.

        See :func:`stepkit_django.permissions.queue_for`. Superusers see everything.
        """
        return permissions.queue_for(self, user, PipelineRun.objects.all())  # type: ignore[return-value]

    def search(self, term: str) -> CheckpointQuerySet:
        """Checkpoints whose title or summary contains ``term`` (any case), or whose run (or own) id it is.

        The contexts are searched too only with ``STEPKIT["SEARCH_CONTEXT"]``: they may be large, and no
        index serves a search inside them. On PostgreSQL, trigram indexes (migration 0009) serve the title
        and the summary; an empty term finds everything.
        """
        from .conf import settings

        term = term.strip()
        if not term:
            return self
        try:
            ident = uuid.UUID(term)
        except ValueError:
            pass
        else:
            return self.filter(Q(run_id=ident) | Q(pk=ident))
        found = Q(title__icontains=term) | Q(summary__icontains=term)
        if settings.SEARCH_CONTEXT:
            found |= Q(context__icontains=term)
        return self.filter(found)


def approvals_count() -> Any:
    """An expression: the number of approvals of each checkpoint (a correlated subquery, no join)."""
    counted = (
        Approval.objects.filter(checkpoint_id=OuterRef("pk"))
        .order_by()
        .values("checkpoint_id")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counted), 0)


#: 0 for a pending checkpoint, 1 for the others: ordered by it, pending items come first.
PENDING_FIRST = Case(When(status=CheckpointStatus.PENDING, then=Value(0)), default=Value(1))
#: The queue index's columns: what it is filtered and sorted by, then what the visibility filter reads.
QUEUE_INDEX = ["status", "pipeline_name", "step", "created_at", "permission", "assigned", "audience", "run", "id"]
#: Assigned, no audience: a checkpoint whose assignees are all gone (or whose audience is not computed yet).
UNHELD = Q(assigned=True, audience__isnull=True)


class Checkpoint(models.Model):
    """A pause for review: the signed checkpoint of one step of a run, and its decision."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="checkpoints", verbose_name=_("run"))
    pipeline_name = models.CharField(_("pipeline"), max_length=200)
    step = models.CharField(_("step"), max_length=500, help_text=_("The step of the pipeline that waits for review."))
    #: What reviewers see first: the Review's title filled in from the context when the run paused.
    title = models.CharField(_("title"), max_length=200, blank=True, default="")
    #: A few labels and values from the context that tell this item from the next (``Review(summary=...)``).
    summary = _json_field(verbose_name=_("summary"), default=dict, blank=True, encoder=TextJSONEncoder)
    position = _json_field(verbose_name=_("position"), default=list)
    token = models.TextField(_("signed checkpoint"), editable=False)
    context = _json_field(verbose_name=_("context"), default=dict)
    #: The Review settings in force when the checkpoint was created.
    review = _json_field(verbose_name=_("review settings"), default=dict)
    status = models.CharField(
        _("status"), max_length=20, choices=CheckpointStatus.choices, default=CheckpointStatus.PENDING
    )
    assigned_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="stepkit_assigned_checkpoints", verbose_name=_("users")
    )
    assigned_groups = models.ManyToManyField(
        Group, blank=True, related_name="stepkit_assigned_checkpoints", verbose_name=_("groups")
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stepkit_claimed_checkpoints",
        verbose_name=_("claimed by"),
    )
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stepkit_decided_checkpoints",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    override_data = _json_field(verbose_name=_("edited data"), default=dict, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    expires_at = models.DateTimeField(_("deadline"), null=True, blank=True)
    escalated = models.BooleanField(_("escalated"), default=False)
    version = models.PositiveIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    #: The review settings' permission, as a column: the queue filters it from its index.
    permission = models.CharField(_("review permission"), max_length=255, blank=True, default="", editable=False)
    #: False only for a checkpoint created assigned to nobody, so that the queue skips the assignment
    #: lookups for it; any assignment added through the ORM sets it (see signal_handlers._assignment_added).
    assigned = models.BooleanField(_("may be assigned"), default=True, editable=False)
    #: The set of its assignees (None: none left, or assigned to nobody), kept by :mod:`stepkit_django.audiences`:
    #: the queue reads who may see the checkpoint from this column, in its index.
    audience = models.ForeignKey(
        Audience,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="checkpoints",
        verbose_name=_("audience"),
        editable=False,
    )
    #: The checkpoint of the same step whose reviewer requested the changes this one answers (None: the first).
    revision_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="revisions",
        verbose_name=_("revision of"),
        editable=False,
    )
    #: 1 for the first review of a step in a run, 2 after one request for changes, and so on.
    revision = models.PositiveIntegerField(_("revision"), default=1, editable=False)
    #: When the reviewers are reminded next (``Review(remind_before=..., remind_every=...)``); None: never.
    next_reminder_at = models.DateTimeField(_("next reminder"), null=True, blank=True, editable=False)

    objects = CheckpointQuerySet.as_manager()

    class Meta:
        # What reviewers call it: an item of their queue ("checkpoint" is the developers' word).
        verbose_name = _("review item")
        verbose_name_plural = _("review items")
        ordering: ClassVar = ["created_at"]
        permissions: ClassVar = [
            ("review_checkpoint", "Can review checkpoints"),
            ("reassign_checkpoint", "Can reassign checkpoints to other reviewers"),
        ]
        indexes: ClassVar = [
            # The trailing columns are what the queue's visibility filter reads (the permission, whether
            # assigned, the run of a starter, the id of an assignment lookup): PostgreSQL can count a
            # reviewer's queue from this index alone.
            models.Index(fields=QUEUE_INDEX, name="stepkit_cp_queue"),
            models.Index(fields=["status", "created_at"], name="stepkit_cp_status_age"),
            # A reassigner's orphans without an audience: a few rows (permissions._orphan_parts, migration 0021).
            models.Index(fields=["status", "permission", "id"], name="stepkit_cp_unheld", condition=UNHELD),
            models.Index(fields=["status", "expires_at"], name="stepkit_cp_expiry"),
            models.Index(fields=["claimed_by", "status"], name="stepkit_cp_claimed"),
            models.Index(fields=["status", "next_reminder_at"], name="stepkit_cp_reminder"),
            # The queue sorted by title (exact titles too); a search inside titles is served on PostgreSQL
            # by the trigram indexes of migration 0009, which no other database has.
            models.Index(fields=["status", "title"], name="stepkit_cp_title"),
            # The queue under "All": pending items first, then oldest first (the admin adds -pk to be total).
            models.Index(PENDING_FIRST, F("created_at"), F("id").desc(), name="stepkit_cp_pending_first"),
            # The overview's decisions per day: a range of decision times, with what the visibility filter
            # reads (as stepkit_cp_queue), so that PostgreSQL counts a month of decisions from this index.
            models.Index(
                fields=["decided_at", "status", "permission", "assigned", "audience", "run", "id"],
                name="stepkit_cp_decided",
                condition=Q(decided_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title or f'{self.pipeline_name} / {self.step}'} ({self.get_status_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.permission:
            self.permission = str((self.review or {}).get("permission") or "")
        if (
            not self._state.adding
            and not args
            and kwargs.get("update_fields") is None
            and not kwargs.get("force_insert")
        ):
            # The audience is written by stepkit_django.audiences alone: a stale instance saved in full
            # must not hand the checkpoint back to assignees it no longer has. (Deferred fields stay
            # unwritten, as Django's save() leaves them.)
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.attname
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name != "audience" and f.attname not in deferred
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        """The checkpoint's review page: the inbox's when its URLs are installed, else the admin's.

        A path; ``STEPKIT["BASE_URL"]`` makes links absolute.
        """
        from django.urls import NoReverseMatch, reverse

        try:
            return reverse("stepkit_inbox:review", args=[self.pk])
        except NoReverseMatch:
            return reverse("admin:stepkit_django_checkpoint_change", args=[self.pk])

    @property
    def is_pending(self) -> bool:
        return self.status == CheckpointStatus.PENDING

    @property
    def approvals_required(self) -> int:
        """How many distinct approvals decide it (with a per-group quorum, the sum of the groups' counts)."""
        return int(self.review.get("approvals_required", 1))

    @property
    def approvals_by_group(self) -> list[tuple[str, int]]:
        """A per-group quorum's groups and counts, in the order declared; ``[]`` for a plain count."""
        return declared_or_none(self.review)

    @property
    def editable_keys(self) -> list[str] | None:
        keys = self.review.get("editable")
        return list(keys) if keys is not None else None

    @property
    def effective_context(self) -> dict[str, Any]:
        """The context the run resumes with: the snapshot with the edits merged in."""
        return {**self.context, **self.override_data}


class Approval(models.Model):
    """One user's approval of a checkpoint; a quorum counts distinct users."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stepkit_approvals")
    #: With a per-group quorum, the name of the group this approval counted toward; blank otherwise.
    group = models.CharField(_("counted for group"), max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("approval")
        verbose_name_plural = _("approvals")
        ordering: ClassVar = ["created_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["checkpoint", "user"], name="stepkit_one_approval_per_user")
        ]

    def __str__(self) -> str:
        return gettext("%(user)s approved %(checkpoint)s at %(time)s") % {
            "user": self.user,
            "checkpoint": self.checkpoint_id,
            "time": f"{self.created_at:%Y-%m-%d %H:%M}",
        }


class AuditTrailImmutable(StepkitError):
    """Audit events are append-only: they cannot be changed or deleted."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """The queryset of both managers of :class:`AuditEvent` (``objects`` is its base manager too):
    updates and deletes raise :class:`AuditTrailImmutable`."""

    def update(self, **kwargs: Any) -> int:
        raise AuditTrailImmutable("Audit events cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditTrailImmutable("Audit events cannot be deleted")

    def bulk_update(self, objs: Iterable[AuditEvent], fields: Iterable[str], batch_size: int | None = None) -> int:
        raise AuditTrailImmutable("Audit events cannot be updated")

    def bulk_create(
        self,
        objs: Iterable[AuditEvent],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[AuditEvent]:
        """Insert events; ``update_conflicts=True`` (an upsert, which rewrites the events it meets) is refused,
        and so is ``ignore_conflicts=True`` (the chain would move past the events it skips)."""
        if update_conflicts:
            raise AuditTrailImmutable("Audit events cannot be updated: bulk_create(update_conflicts=True) refused")
        if ignore_conflicts:  # a skipped event would still move the chain
            raise AuditTrailImmutable("Audit events are chained: bulk_create(ignore_conflicts=True) refused")
        objs = list(objs)
        # No savepoint: an error ends the caller's transaction anyway, and a decision's events are sealed already.
        with transaction.atomic(using=self.db, savepoint=False):
            chain_events(objs, self.db)
            return super().bulk_create(
                objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields
            )

    def visible_to(self, user: Any) -> AuditEventQuerySet:
        """Events of runs the user started, or that have a checkpoint in the user's queue."""
        return permissions.events_for(self, user, Checkpoint.objects.for_user(user))  # type: ignore[return-value]


class AuditEvent(models.Model):
    """An immutable record of something that happened to a run or a checkpoint."""

    id = models.BigAutoField(primary_key=True)
    # The run, checkpoint and actor columns lead the indexes below (the last two partial: a step's event has
    # neither), no index of their own: each index is one more write per event, and a run writes one per step.
    run = models.ForeignKey(
        PipelineRun, on_delete=models.PROTECT, related_name="events", verbose_name=_("run"), db_index=False
    )
    checkpoint = models.ForeignKey(
        Checkpoint,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("checkpoint"),
        db_index=False,
    )
    pipeline_name = models.CharField(_("pipeline"), max_length=200)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stepkit_audit_events",
        verbose_name=_("actor"),
        db_index=False,
    )
    timestamp = models.DateTimeField(_("time"), default=timezone.now)
    data = _json_field(verbose_name=_("data"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)
    #: HMAC of the previous event's chain and this event's kept fields (:mod:`stepkit_django.chain`);
    #: Never None since migration 0017, which chained the events written before it.
    chain = models.BinaryField(_("chain"), null=True, blank=True, editable=False)
    #: Keyed digest of the full ``data`` as written; a purge leaves it, the chain covers it.
    data_digest = models.BinaryField(_("data digest"), null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        # Django's internals (refresh_from_db(), deletion, Model.save()'s UPDATE) use the base
        # manager; a plain one would update and delete: it is the guarded one, filtering nothing.
        base_manager_name = "objects"
        ordering: ClassVar = ["timestamp", "id"]
        indexes: ClassVar = [
            models.Index(fields=["run", "timestamp"], name="stepkit_event_run"),
            models.Index(fields=["action", "timestamp"], name="stepkit_event_action"),
            models.Index(fields=["pipeline_name", "timestamp"], name="stepkit_event_pipeline"),
            models.Index(
                fields=["actor", "timestamp"], name="stepkit_event_by_actor", condition=models.Q(actor__isnull=False)
            ),
            models.Index(
                fields=["checkpoint"], name="stepkit_event_checkpoint", condition=models.Q(checkpoint__isnull=False)
            ),
            # The whole trail in time order (the API's GET events/, by cursor): without it, the first page
            # sorts every event.
            models.Index(fields=["timestamp", "id"], name="stepkit_event_time"),
        ]

    def __str__(self) -> str:
        values = {
            "action": self.get_action_display(),
            "actor": self.actor,
            "time": f"{self.timestamp:%Y-%m-%d %H:%M:%S}",
        }
        if self.actor_id:
            return gettext("%(action)s by %(actor)s at %(time)s") % values
        return gettext("%(action)s at %(time)s") % values

    def save(
        self,
        *,
        force_insert: bool | tuple[models.base.ModelBase, ...] = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
    ) -> None:
        """Insert the event: always an INSERT, never an UPDATE. Raises :class:`AuditTrailImmutable` for an event
        loaded or saved already, when asked to update, and when another event has its key (Django would otherwise
        UPDATE that row)."""
        if not self._state.adding or force_update or update_fields is not None:
            raise AuditTrailImmutable("Audit events cannot be changed once written")
        using = using or router.db_for_write(type(self), instance=self)
        if self.pk is not None and type(self)._base_manager.using(using).filter(pk=self.pk).exists():
            raise AuditTrailImmutable(f"Audit event {self.pk} exists already: events cannot be changed once written")
        with transaction.atomic(using=using, savepoint=False):
            chain_events([self], using)
            super().save(force_insert=force_insert or True, using=using)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditTrailImmutable("Audit events cannot be deleted")

    @property
    def data_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True, cls=DjangoJSONEncoder)


def locked_head(run_id: Any, using: str | None = None) -> bytes | None:
    """The chain head of the run, its row locked for this transaction (``FOR NO KEY UPDATE``).

    SQLite has no row locks: a no-op UPDATE of the row first takes the database's write lock, so that two writers
    never both read then wait to upgrade their lock (the loser would fail, "database is locked", not wait).
    """
    db = using or router.db_for_write(PipelineRun)
    if connections[db].vendor == "sqlite":
        PipelineRun._base_manager.using(db).filter(pk=run_id).update(audit_head=models.F("audit_head"))
    runs = PipelineRun._base_manager.using(db).select_for_update(no_key=True).filter(pk=run_id)
    head = runs.values_list("audit_head", flat=True).first()
    return bytes(head) if head is not None else None


def seal_events(events: Sequence[AuditEvent], previous: bytes | None) -> bytes | None:
    """Set the ``chain`` and ``data_digest`` of one run's new ``events`` (in order) after the link
    ``previous``; the last link, the run's new head."""
    key = chain.signing_key()
    for event in events:
        event.data_digest, text = chain.seal(
            key,
            run=event.run_id,
            checkpoint=event.checkpoint_id,
            pipeline_name=event.pipeline_name,
            action=event.action,
            actor=event.actor_id,
            timestamp=event.timestamp,
            note=event.note,
            data=event.data or {},
        )
        event.chain = previous = chain.link(key, previous, text)
    return previous


def chain_events(events: Sequence[AuditEvent], using: str) -> None:
    """Chain new ``events`` (in order) to their runs' trails, inside the transaction that inserts them: lock
    each run's row (runs by key: :func:`locked_head`), set each event's ``chain`` and ``data_digest``
    (:func:`seal_events`) and move the run's ``audit_head`` to the last one. Events sealed already (by
    :func:`stepkit_django.transitions.write_checkpoint` or :mod:`stepkit_django.execution.progress`, which
    move the head with the run's own UPDATE) are left as they are.

    On SQLite, which has no row locks, the head's UPDATE takes the database's write lock; a writer that
    committed between the read and it makes this transaction fail rather than fork the chain.
    """
    by_run: dict[Any, list[AuditEvent]] = {}
    for event in events:
        if event.chain is None:
            by_run.setdefault(event.run_id, []).append(event)
    for run_id in sorted(by_run, key=str):
        head = seal_events(by_run[run_id], locked_head(run_id, using))
        PipelineRun._base_manager.using(using).filter(pk=run_id).update(audit_head=head)
        for event in by_run[run_id]:  # the run instances the events hold know the head (the hot path uses it)
            cached = event._state.fields_cache.get("run")
            if cached is not None:
                cached.audit_head = head


class NotificationQuerySet(models.QuerySet["Notification"]):
    def visible_to(self, user: Any) -> NotificationQuerySet:
        """Notifications of runs the user may see, and of checkpoints in their queue, and the user's own digests;
        all for run managers.

        See :func:`stepkit_django.permissions.notifications_for`.
        """
        queue = Checkpoint.objects.for_user(user)
        runs = PipelineRun.objects.visible_to(user)
        return permissions.notifications_for(self, user, runs, queue)  # type: ignore[return-value]


class Notification(models.Model):
    """One message of one event to one recipient through one notifier (its channel).

    Written in the transaction of the event it tells (a rolled-back event sends nothing),
    sent after it commits, retried with backoff; ``key`` is unique per (event, recipient,
    channel), so that a re-delivered task never sends again once one attempt succeeded.
    See :mod:`stepkit_django.notifications`.
    """

    id = models.BigAutoField(primary_key=True)
    #: A digest of (the event's occurrence, the recipient, the channel); a webhook's idempotency key.
    key = models.CharField(_("key"), max_length=64, unique=True, editable=False)
    event = models.CharField(_("event"), max_length=32, choices=NotificationEvent.choices)
    #: The name of the notifier (``STEPKIT["NOTIFIERS"]`` key, or the ``name`` of one in ``Review(notify=...)``).
    channel = models.CharField(_("channel"), max_length=100)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="stepkit_notifications",
        verbose_name=_("recipient"),
    )
    #: An email address, or where a webhook posts (without its secret parts), when there is no user.
    address = models.CharField(_("address"), max_length=500, blank=True)
    #: The run the event is about; None for a digest, which lists items of several runs.
    run = models.ForeignKey(
        PipelineRun,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("run"),
        db_index=False,
    )
    checkpoint = models.ForeignKey(
        Checkpoint,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("checkpoint"),
    )
    #: Who caused the event (never told of it); None for the system.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
        db_index=False,
    )
    #: What the message says beyond the checkpoint and the run (a comment, the error of a failed run…).
    data = _json_field(verbose_name=_("data"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    #: When a pending notification may be sent (again); while one is being sent, the end of the sender's lease.
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering: ClassVar = ["created_at", "id"]
        indexes: ClassVar = [
            # The sweep's "due for a retry, or whose sender's lease ran out".
            models.Index(fields=["status", "next_attempt_at"], name="stepkit_notify_due"),
            models.Index(fields=["run", "created_at"], name="stepkit_notify_run"),
        ]

    def __str__(self) -> str:
        return gettext("%(event)s to %(recipient)s by %(channel)s (%(status)s)") % {
            "event": self.get_event_display(),
            "recipient": self.recipient if self.recipient_id else self.address,
            "channel": self.channel,
            "status": self.get_status_display(),
        }


class QueueOverview(Checkpoint):
    """Not a table: gives the queue overview page its entry on the admin index."""

    class Meta:
        proxy = True
        verbose_name = _("queue overview")
        verbose_name_plural = _("queue overview")
        default_permissions = ()
