"""Signed action links: one decision on one checkpoint by one user, from a link in an email.

:func:`action_url` makes the URL (under the inbox, ``stepkit_inbox:link``); its token is signed with
Django's signing framework under a salt of its own (:data:`SALT`), with ``SECRET_KEY`` (tokens signed with
a key of ``SECRET_KEY_FALLBACKS`` still verify while keys rotate), and binds the checkpoint, the version it
was at, the user and the outcome, with the moment it expires. :func:`read` verifies a token; :func:`resolve`
checks that it may still be used, by whom, on which checkpoint. Both raise
:class:`~stepkit_django.exceptions.ActionLinkInvalid` with a ``reason``.

A link works once: every decision moves the checkpoint to its next version, so the link, bound to the
version it was made at, is stale from then on. Opening a link never decides (an email scanner's pre-fetch
must change nothing): the inbox's link pages (:mod:`stepkit_django.inbox.link_views`) show a confirmation
and decide on its POST only.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from . import choices, permissions
from .conf import settings
from .exceptions import ActionLinkInvalid, InvalidDecision, ReviewConflict, ReviewPermissionDenied
from .models import Approval, AuditEvent, Checkpoint
from .status import AuditAction, CheckpointStatus

__all__ = ["OUTCOMES", "SALT", "ActionLink", "action_url", "make_token", "read", "resolve"]

#: The salt of action links' signatures: a token of another use of ``SECRET_KEY`` is never one of these.
SALT = "stepkit_django.action_link"

#: The decisions a link can carry. An approval of a review with choices names its choice: ``"approve:publish"``.
OUTCOMES = ("approve", "reject")


@dataclass(frozen=True)
class ActionLink:
    """What a verified token says."""

    checkpoint_id: str
    #: The checkpoint's version when the link was made.
    version: int
    #: The primary key of the user the link was made for, as a string.
    user_id: str
    #: ``"approve"`` or ``"reject"``.
    outcome: str
    #: The choice of an approval (a key of ``Review(choices=...)``), "" without one.
    choice: str
    expires_at: datetime

    @property
    def outcome_key(self) -> str:
        """The outcome as given to :func:`action_url`: ``"approve:publish"`` with a choice."""
        return f"{self.outcome}:{self.choice}" if self.choice else self.outcome


def _split(outcome: str) -> tuple[str, str]:
    decision, _sep, choice = str(outcome).partition(":")
    return decision, choice


def _check_outcome(cp: Checkpoint, outcome: str) -> tuple[str, str]:
    """``outcome`` as (decision, choice), or InvalidDecision when ``cp``'s review does not allow it."""
    decision, choice = _split(outcome)
    if decision not in OUTCOMES or (decision == "reject" and choice):
        raise InvalidDecision(
            {"outcome": [gettext("An action link approves or rejects: %(outcome)r is neither.") % {"outcome": outcome}]}
        )
    if decision == "approve":
        keys = [key for key, _label in choices.options(cp.review)]
        if cp.review.get("multiple") and keys:
            raise InvalidDecision(
                {"outcome": [gettext("An action link cannot pick several choices: approve this item in the inbox.")]}
            )
        if keys and choice not in keys:
            raise InvalidDecision(
                {
                    "outcome": [
                        gettext("Approving this item needs one of its choices: %(choices)s.")
                        % {"choices": ", ".join(f"approve:{key}" for key in keys)}
                    ]
                }
            )
        if not keys and choice:
            raise InvalidDecision({"outcome": [gettext("This item's review has no choices to pick from.")]})
    return decision, choice


#: The longest an action link may work: a link in an old email should not decide anything years later.
MAX_AGE_LIMIT = timedelta(days=365)


def valid_max_age(age: Any) -> float | None:
    """``age`` (seconds or a timedelta) as seconds, if it is a usable link lifetime: finite, at least one
    second, at most :data:`MAX_AGE_LIMIT`; None otherwise."""
    if isinstance(age, bool):
        return None
    if isinstance(age, timedelta):
        seconds = age.total_seconds()
    elif isinstance(age, (int, float)):
        seconds = float(age)
    else:
        return None
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_AGE_LIMIT.total_seconds():
        return None
    return seconds


def make_token(checkpoint: Checkpoint, user: Any, outcome: str, *, max_age: float | timedelta | None = None) -> str:
    """The signed token of :func:`action_url` (for a URL of your own: the inbox's is ``stepkit_inbox:link``)."""
    cp = Checkpoint.objects.get(pk=checkpoint.pk)  # its version now, not that of an instance loaded earlier
    if cp.status != CheckpointStatus.PENDING:
        raise ReviewConflict(gettext("This item was decided already: no action link can be made for it."))
    _check_outcome(cp, outcome)
    seconds = valid_max_age(settings.ACTION_LINK_MAX_AGE if max_age is None else max_age)
    if seconds is None:
        raise ValueError(f"max_age must be between 1 second and {MAX_AGE_LIMIT} (a number of seconds or a timedelta)")
    expires = math.ceil(timezone.now().timestamp() + seconds)
    payload = {"c": str(cp.pk), "v": cp.version, "u": str(user.pk), "o": str(outcome), "x": expires}
    return signing.dumps(payload, salt=SALT)


def action_url(checkpoint: Checkpoint, user: Any, outcome: str, *, max_age: float | timedelta | None = None) -> str:
    """A URL that lets ``user`` take one decision on ``checkpoint`` (``"approve"``, ``"approve:<choice>"``
    or ``"reject"``) after a confirmation, until it is used, the checkpoint changes, or ``max_age`` seconds
    pass (default ``STEPKIT["ACTION_LINK_MAX_AGE"]``); absolute with ``STEPKIT["BASE_URL"]``.

    Raises :class:`~stepkit_django.exceptions.InvalidDecision` for an outcome the review does not allow, and
    :class:`~stepkit_django.exceptions.ReviewConflict` when the checkpoint is decided already. Needs the inbox
    mounted (``include("stepkit_django.inbox.urls")``).
    """
    path = reverse("stepkit_inbox:link", args=[make_token(checkpoint, user, outcome, max_age=max_age)])
    base = str(settings.BASE_URL or "").rstrip("/")
    return f"{base}{path}" if base else path


def read(token: str) -> ActionLink:
    """The link ``token`` stands for, verified: ActionLinkInvalid ``"tampered"`` or ``"expired"`` otherwise.

    Reads no database: it says nothing of whether the checkpoint exists.
    """
    try:
        payload = signing.loads(str(token), salt=SALT)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError, OverflowError):
        raise ActionLinkInvalid(
            "tampered", gettext("This link is not valid: it may have been cut or changed.")
        ) from None
    try:
        decision, choice = _split(payload["o"])
        link = ActionLink(
            checkpoint_id=str(uuid.UUID(str(payload["c"]))),
            version=int(payload["v"]),
            user_id=str(payload["u"]),
            outcome=decision,
            choice=choice,
            expires_at=datetime.fromtimestamp(int(payload["x"]), tz=timezone.get_current_timezone()),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise ActionLinkInvalid(
            "tampered", gettext("This link is not valid: it may have been cut or changed.")
        ) from None
    if link.outcome not in OUTCOMES or (link.outcome == "reject" and link.choice):
        raise ActionLinkInvalid("tampered", gettext("This link is not valid: it may have been cut or changed."))
    if link.expires_at <= timezone.now():
        raise ActionLinkInvalid("expired", gettext("This link has expired."))
    return link


def resolve(link: ActionLink, user: Any = None) -> tuple[Checkpoint, Any]:
    """The checkpoint and the user of a verified ``link`` if it can still be used now, by ``user`` (the
    logged-in user; None or anonymous: the link stands for its own user, ``ACTION_LINKS_LOGIN = "link"``).

    Raises :class:`ActionLinkInvalid`: ``"foreign_user"`` when ``user`` is not the link's (before the
    checkpoint is looked up), ``"not_allowed"`` when the link's user is inactive or may no longer review it,
    ``"used"`` when they decided it already, ``"stale"`` when it changed or was decided since.
    """
    if user is not None and getattr(user, "is_authenticated", False) and str(user.pk) != link.user_id:
        raise ActionLinkInvalid(
            "foreign_user", gettext("This link was made for another user than the one logged in here.")
        )
    owner = _owner(link) if user is None or not getattr(user, "is_authenticated", False) else user
    cp = Checkpoint.objects.select_related("run").filter(pk=link.checkpoint_id).first()
    if cp is None:
        raise ActionLinkInvalid("stale", gettext("This item is no longer there."))
    if cp.status != CheckpointStatus.PENDING or cp.version != link.version:
        used = cp.decided_by_id is not None and str(cp.decided_by_id) == link.user_id
        used = used or Approval.objects.filter(checkpoint=cp, user_id=owner.pk).exists()
        if used:
            raise ActionLinkInvalid("used", gettext("This link was used already: you decided this item."))
        raise ActionLinkInvalid("stale", gettext("This item changed since the link was sent, or was decided."))
    if not permissions.can_review(cp, owner) or (link.outcome == "approve" and not _may_approve(cp, owner)):
        raise ActionLinkInvalid("not_allowed", gettext("You may not review this item (any more)."))
    # What the decision would refuse, said before the button is offered (read-only: nothing is taken over).
    now = timezone.now()
    if cp.expires_at is not None and cp.expires_at <= now:
        raise ActionLinkInvalid("stale", gettext("The deadline of this item has passed."))
    if (
        cp.claimed_by_id is not None
        and cp.claimed_by_id != owner.pk
        and cp.claimed_at is not None
        and cp.claimed_at > now - settings.CLAIM_TIMEOUT
    ):
        raise ActionLinkInvalid("stale", gettext("Someone else is working on this item now: open it in the inbox."))
    return cp, owner


def _may_approve(cp: Checkpoint, owner: Any) -> bool:
    """The approval rules beyond reviewing: whoever reassigned it may not approve it."""
    reassigners = AuditEvent.objects.filter(checkpoint=cp, action=AuditAction.REASSIGNED, actor__isnull=False)
    try:
        permissions.check_approver(cp, owner, reassigners.values_list("actor_id", flat=True))
    except ReviewPermissionDenied:
        return False
    return True


def _owner(link: ActionLink) -> Any:
    model = get_user_model()
    try:
        owner = model._default_manager.filter(pk=link.user_id).first()
    except (ValueError, TypeError):
        owner = None
    if owner is None or not permissions.is_active_user(owner):
        raise ActionLinkInvalid("not_allowed", gettext("You may not review this item (any more)."))
    return owner
