"""The daily digest: each reviewer gets one email listing what waits for them, oldest first, overdue items marked.

**Who** (:func:`waiting_for_reviewers`): for each pending checkpoint, the reviewers that ``review_requested``
asks (:func:`stepkit_django.permissions.fit_reviewers`): its assigned users and the members of its assigned
groups, or, assigned to nobody, the holders of its review permission (superusers only where it is assigned to
them); active, holding its review permission, not the run's starter unless the review allows it (four-eyes),
with an email address. Left out: a reviewer who approved it already (a quorum waits for others), or who
reassigned it (:func:`stepkit_django.permissions.check_approver`). So a digest lists a subset of the queue
(``Checkpoint.objects.for_user``): the items there that the reviewer may decide.

**How many queries**: one for the pending checkpoints, one each for their assigned users, their assigned
groups, those groups' members, their approvals and their reassignments, one per distinct review permission
for its holders (``ModelBackend.with_perm``), one for the users; then three to write the notifications. None
grows with the users or the items (a re-run's starters aside: one per run it was re-run from). Projects whose
authentication backends cannot list a permission's holders fall back to ``user.has_perm``, per user.

**Delivery** (:func:`send_digests`): one :class:`~stepkit_django.models.Notification` per reviewer and email
notifier, with the key of (the day, the channel, the reviewer): running the digest again on the same day adds
nothing, and sends nothing twice. They are written in one transaction and handed to the executor after it
commits (a rolled-back transaction sends nothing), then sent and retried like every notification. The email
lists the items still pending when it is sent (:func:`stepkit_django.notifications.messages.build_digest`).

**Through which notifiers**: every :class:`~stepkit_django.notifications.EmailNotifier` of
``STEPKIT["NOTIFIERS"]`` that handles the ``digest`` event (all do, unless their ``events`` leave it out); with
none, nothing is written.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .. import permissions
from ..conf import settings
from ..models import Approval, AuditEvent, Checkpoint, Notification
from ..status import AuditAction, NotificationEvent, NotificationStatus
from .events import notification_key, send_after_commit
from .notifiers import EmailNotifier, get_notifier

__all__ = ["Waiting", "digest_channels", "send_digests", "waiting_for_reviewers"]

logger = logging.getLogger("stepkit_django")


@dataclass
class Waiting:
    """What waits for one reviewer: the user, and the pending checkpoints they may decide, oldest first."""

    user: Any
    checkpoints: list[Checkpoint]


def digest_channels() -> list[str]:
    """The names of the notifiers of ``STEPKIT["NOTIFIERS"]`` that send digests: the email notifiers that
    handle the ``digest`` event."""
    names: list[str] = []
    configured = settings.NOTIFIERS
    for name in configured if isinstance(configured, dict) else {}:
        try:
            notifier = get_notifier(str(name))
        except Exception:  # the system check E007 reports it
            logger.exception("Notifier %r cannot be built; it sends no digest", name)
            continue
        if isinstance(notifier, EmailNotifier) and notifier.handles(NotificationEvent.DIGEST):
            names.append(str(name))
    return names


def _pairs(rows: Any) -> dict[Any, set[Any]]:
    found: dict[Any, set[Any]] = defaultdict(set)
    for left, right in rows:
        found[left].add(right)
    return found


def _holders(permission_names: set[str]) -> dict[str, set[Any]] | None:
    """The pks of the active users holding each permission (superusers included); None when the
    authentication backends cannot list them."""
    manager = get_user_model()._default_manager
    found: dict[str, set[Any]] = {}
    try:
        for name in sorted(permission_names):
            holders = manager.with_perm(name, is_active=True, include_superusers=True)
            found[name] = set(holders.values_list("pk", flat=True))
    except (TypeError, ValueError):  # several backends, or one that cannot list holders
        return None
    return found


def waiting_for_reviewers() -> list[Waiting]:
    """Every reviewer with an email address who has pending checkpoints to decide, with them (oldest first);
    the reviewers in the order of their pks. A small constant number of queries (see the module)."""
    pending = list(
        Checkpoint.objects.pending()
        .select_related("run")
        .only(
            "id",
            "pipeline_name",
            "step",
            "title",
            "review",
            "permission",
            "assigned",
            "created_at",
            "expires_at",
            "run__id",
            "run__started_by",
            "run__forked_from",
        )
        .order_by("created_at", "pk")
    )
    if not pending:
        return []
    pending_ids = Checkpoint.objects.pending().values("pk")
    assigned_users = _pairs(
        Checkpoint.assigned_users.through.objects.filter(checkpoint_id__in=pending_ids).values_list(
            "checkpoint_id", "user_id"
        )
    )
    assigned_groups = _pairs(
        Checkpoint.assigned_groups.through.objects.filter(checkpoint_id__in=pending_ids).values_list(
            "checkpoint_id", "group_id"
        )
    )
    user_model = get_user_model()
    group_ids = set().union(*assigned_groups.values()) if assigned_groups else set()
    members = (
        _pairs(user_model.groups.through.objects.filter(group_id__in=group_ids).values_list("group_id", "user_id"))
        if group_ids
        else {}
    )
    holders = _holders({permissions.review_permission_of(cp) for cp in pending})

    candidates: set[Any] = (
        set().union(*assigned_users.values(), *members.values()) if assigned_users or members else set()
    )
    anyone = holders is None and any(not cp.assigned for cp in pending)
    if holders is not None:
        for cp in pending:
            if not cp.assigned:
                candidates |= holders.get(permissions.review_permission_of(cp), set())
    email_field = user_model.get_email_field_name()
    users_qs = user_model._default_manager.filter(is_active=True).exclude(**{email_field: ""})
    users_qs = users_qs.exclude(**{f"{email_field}__isnull": True})
    if not anyone:
        users_qs = users_qs.filter(pk__in=candidates)
    users = {u.pk: u for u in users_qs.order_by("pk")}
    if not users:
        return []
    approved = _pairs(Approval.objects.filter(checkpoint_id__in=pending_ids).values_list("checkpoint_id", "user_id"))
    reassigners = _pairs(
        AuditEvent.objects.filter(
            checkpoint_id__in=pending_ids, action=AuditAction.REASSIGNED, actor__isnull=False
        ).values_list("checkpoint_id", "actor_id")
    )

    holds: Callable[[Any, str], bool] | None = None
    if holders is not None:
        known = holders

        def holds(user: Any, permission: str) -> bool:
            return user.pk in known.get(permission, set())

    waiting: dict[Any, list[Checkpoint]] = defaultdict(list)
    for cp in pending:
        if cp.assigned:
            ids = set(assigned_users.get(cp.pk, set()))
            for group in assigned_groups.get(cp.pk, set()):
                ids |= members.get(group, set())
            found = [users[pk] for pk in sorted(ids) if pk in users]
        elif holders is None:
            found = [u for u in users.values() if not permissions.is_superuser(u)]
        else:
            mine = holders.get(permissions.review_permission_of(cp), set())
            found = [users[pk] for pk in sorted(mine) if pk in users and not permissions.is_superuser(users[pk])]
        for user in permissions.fit_reviewers(cp, found, holds):
            if user.pk in approved.get(cp.pk, set()):
                continue  # approved it already: it waits for the others of the quorum
            if not permissions.may_approve(cp, user, reassigners.get(cp.pk, set())):
                continue
            waiting[user.pk].append(cp)
    return [Waiting(users[pk], checkpoints) for pk, checkpoints in sorted(waiting.items())]


def digest_key(day: date, channel: str, user: Any) -> str:
    """The unique key of ``user``'s digest of ``day`` by ``channel``."""
    return notification_key(NotificationEvent.DIGEST, day.isoformat(), channel, f"user:{user.pk}")


def send_digests(now: datetime | None = None) -> int:
    """Write today's digest of every reviewer who has items waiting, one per email notifier, and have them sent
    after the commit; how many were written (0 when today's were written already, or no email notifier is
    configured). Today is ``now``'s date in the current time zone. Safe to run twice, or from two processes."""
    now = now or timezone.now()
    channels = digest_channels()
    if not channels:
        return 0
    day = timezone.localdate(now)
    most = int(settings.DIGEST_MAX_ITEMS)
    email_field = get_user_model().get_email_field_name()
    with transaction.atomic():
        rows: list[Notification] = []
        for entry in waiting_for_reviewers():
            listed = entry.checkpoints[:most]
            data = {
                "day": day.isoformat(),
                "items": [str(cp.pk) for cp in listed],
                "more": len(entry.checkpoints) - len(listed),
            }
            address = str(getattr(entry.user, email_field, "") or "")[:500]
            rows.extend(
                Notification(
                    key=digest_key(day, channel, entry.user),
                    event=NotificationEvent.DIGEST,
                    channel=channel,
                    recipient=entry.user,
                    address=address,
                    data=data,
                )
                for channel in channels
            )
        if not rows:
            return 0
        keys = [row.key for row in rows]
        written = set(Notification.objects.filter(key__in=keys).values_list("key", flat=True))
        new = [row for row in rows if row.key not in written]
        if not new:
            return 0
        Notification.objects.bulk_create(new, ignore_conflicts=True)  # another process's: nothing new
        ids = list(
            Notification.objects.filter(
                key__in=[row.key for row in new], status=NotificationStatus.PENDING
            ).values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: send_after_commit(ids), robust=True)
    return len(new)
