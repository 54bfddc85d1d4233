"""Moving through the queue: the item after this one, "Review next", and what a decision's message says.

After a decision the reviewer lands on the next item they can act on (oldest
first, as the queue lists them); "Review next" on the queue claims the oldest
free item, as the API's ``claim-next`` does, and opens it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from .. import permissions, quorum, review
from ..conf import settings
from ..models import Checkpoint
from ..status import CheckpointStatus

__all__ = ["approved_message", "next_item", "review_next"]

#: How many candidates are looked at for the next item before giving up (the rest are somebody else's).
LOOK_AHEAD = 25


def next_item(user: Any, after: Checkpoint | None = None, **filters: Any) -> Checkpoint | None:
    """The oldest pending item ``user`` may decide now (not ``after``, not claimed by someone else)."""
    now = timezone.now()
    free = Q(claimed_by__isnull=True) | Q(claimed_by=user) | Q(claimed_at__lt=now - settings.CLAIM_TIMEOUT)
    candidates = (
        Checkpoint.objects.for_user(user)
        .filter(free, Q(expires_at__isnull=True) | Q(expires_at__gt=now), status=CheckpointStatus.PENDING, **filters)
        .exclude(approvals__user=user)
        .select_related("run")
        .order_by("created_at", "pk")
    )
    if after is not None:
        candidates = candidates.exclude(pk=after.pk)
    for candidate in candidates[:LOOK_AHEAD]:
        if permissions.can_review(candidate, user) and not _quorum_refuses(candidate, user):
            return candidate
    return None


def _quorum_refuses(checkpoint: Checkpoint, user: Any) -> bool:
    """With a per-group quorum, whether ``user``'s groups have all given their approvals (or they are in none)."""
    if not checkpoint.approvals_by_group:
        return False
    return quorum.refusal(checkpoint.review, user, checkpoint.approvals.values_list("group", flat=True)) is not None


def review_next(user: Any, **filters: Any) -> Checkpoint | None:
    """Claim the oldest free item of ``user``'s queue (narrowed by ``filters``) and return it, or None."""
    return review.claim_next(user, **filters)


def approved_message(checkpoint: Checkpoint, title: str) -> str:
    """What an approval did: decided, or where the quorum stands ("1 of 2, waiting for one more")."""
    if checkpoint.status == CheckpointStatus.APPROVED:
        return gettext("Approved “%(title)s”: the run continues.") % {"title": title}
    if checkpoint.approvals_by_group:
        groups = quorum.progress_of(checkpoint)
        return gettext("Approved “%(title)s” — %(progress)s, waiting for %(waiting)s.") % {
            "title": title,
            "progress": quorum.describe(groups),
            "waiting": ", ".join(group.group for group in groups if not group.met),
        }
    given, required = checkpoint.approvals.count(), checkpoint.approvals_required
    missing = required - given
    if missing == 1:
        return gettext("Approved “%(title)s” — %(given)d of %(required)d, waiting for one more.") % {
            "title": title,
            "given": given,
            "required": required,
        }
    return ngettext(
        "Approved “%(title)s” — %(given)d of %(required)d, waiting for %(missing)d more.",
        "Approved “%(title)s” — %(given)d of %(required)d, waiting for %(missing)d more.",
        missing,
    ) % {"title": title, "given": given, "required": required, "missing": missing}
