"""What a notification says, built when it is sent: the email templates' ``message`` and a webhook's body."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext, pgettext

from .. import choices, links
from ..conf import settings
from ..models import Checkpoint, Notification
from ..status import CheckpointStatus, NotificationEvent

__all__ = ["ActionLink", "Digest", "DigestItem", "Message", "absolute_url", "action_links", "build", "build_digest"]


def absolute_url(path: str) -> str:
    """``path`` behind ``STEPKIT["BASE_URL"]`` (unchanged when it is empty)."""
    base = str(settings.BASE_URL or "").rstrip("/")
    return f"{base}{path}" if base and path.startswith("/") else path


@dataclass(frozen=True)
class Message:
    """A notification's content. The email templates read it as ``message``."""

    #: The unique key of the notification (a webhook's ``Idempotency-Key``).
    id: str
    event: str
    #: The event in words, in the current language.
    event_label: str
    pipeline: str
    run_id: str
    run_status: str
    checkpoint_id: str | None
    step: str
    title: str
    summary: dict[str, str]
    #: The checkpoint's status when the message was built ("pending", "approved"…); "" without a checkpoint.
    status: str
    #: The checkpoint's deadline, if it has one.
    due: datetime | None
    #: ``review`` (the checkpoint's review page) and ``run`` (the run's page), absolute with ``BASE_URL``.
    links: dict[str, str] = field(default_factory=dict)
    #: Who caused the event (a username), "" for the system.
    actor: str = ""
    #: The decision's comment, the failed run's exception type…: the notification's ``data``.
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of :class:`~stepkit_django.notifications.WebhookNotifier`."""
        return {
            "id": self.id,
            "event": self.event,
            "pipeline": self.pipeline,
            "run": {"id": self.run_id, "status": self.run_status},
            "checkpoint": {
                "id": self.checkpoint_id,
                "step": self.step,
                "title": self.title,
                "summary": self.summary,
                "status": self.status,
                "due": self.due.isoformat() if self.due else None,
            }
            if self.checkpoint_id
            else None,
            "links": self.links,
            "actor": self.actor or None,
            "data": self.data,
        }


def _link(name: str, pk: Any) -> str:
    try:
        return absolute_url(reverse(name, args=[pk]))
    except NoReverseMatch:  # the admin is not installed, or not under this name
        return ""


def build(notification: Notification) -> Message:
    """The message of ``notification``, from its checkpoint and run as they are now (a digest: :func:`build_digest`)."""
    if notification.event == NotificationEvent.DIGEST:
        return build_digest(notification)
    run, cp = notification.run, notification.checkpoint
    if run is None:  # only a digest has no run
        raise ValueError(f"Notification {notification.pk} ({notification.event}) has no run")
    links = {"run": _link("admin:stepkit_django_pipelinerun_change", run.pk)}
    if cp is not None:
        try:
            links["review"] = absolute_url(cp.get_absolute_url())
        except NoReverseMatch:
            links["review"] = ""
    actor = notification.actor.get_username() if notification.actor_id and notification.actor else ""
    return Message(
        id=notification.key,
        event=notification.event,
        event_label=str(NotificationEvent(notification.event).label),
        pipeline=run.pipeline_name,
        run_id=str(run.pk),
        run_status=run.status,
        checkpoint_id=str(cp.pk) if cp is not None else None,
        step=cp.step if cp is not None else str(notification.data.get("step", "")),
        title=cp.title if cp is not None else run.pipeline_name,
        summary=dict(cp.summary) if cp is not None else {},
        status=cp.status if cp is not None else "",
        due=cp.expires_at if cp is not None else None,
        links={key: value for key, value in links.items() if value},
        actor=actor,
        data=dict(notification.data),
    )


# -- action links in emails ----------------------------------------------------------------------


@dataclass(frozen=True)
class ActionLink:
    """A decision an email offers as a link (``Review(email_actions=True)``): its words and its URL."""

    #: ``"approve"``, ``"approve:<choice>"`` or ``"reject"``.
    outcome: str
    label: str
    url: str


def action_links(notification: Notification) -> list[ActionLink]:
    """The approve and reject links of a review-requested email, made now for its recipient at the
    checkpoint's version now (see :func:`stepkit_django.review.action_url`); ``[]`` for other events, a
    recipient who is only an address, a decided checkpoint, a review without ``email_actions``, or when the
    inbox is not mounted. A review with choices gets one approve link per choice (none with ``multiple``)."""
    cp, user = notification.checkpoint, notification.recipient
    if notification.event != NotificationEvent.REVIEW_REQUESTED or cp is None or user is None:
        return []
    cp = Checkpoint.objects.filter(pk=cp.pk).first()
    if cp is None or cp.status != CheckpointStatus.PENDING or not cp.review.get("email_actions"):
        return []
    options = choices.options(cp.review)
    approvals: list[tuple[str, str]]
    if not options:
        approvals = [("approve", pgettext("action link", "Approve"))]
    elif cp.review.get("multiple"):
        approvals = []
    else:
        approvals = [(f"approve:{key}", gettext("Approve: %(choice)s") % {"choice": label}) for key, label in options]
    offered = [*approvals, ("reject", pgettext("action link", "Reject"))]
    try:
        return [ActionLink(outcome, label, links.action_url(cp, user, outcome)) for outcome, label in offered]
    except NoReverseMatch:  # the inbox is not mounted: the email keeps its review link only
        return []


# -- the daily digest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestItem:
    """One item of a digest: a pending checkpoint that waits for the recipient."""

    checkpoint_id: str
    pipeline: str
    step: str
    title: str
    summary: dict[str, str]
    #: When it started waiting (the checkpoint's creation).
    waiting_since: datetime
    #: How long it has waited when the digest is built.
    waiting: timedelta
    due: datetime | None
    #: Past its deadline when the digest is built.
    overdue: bool
    #: The review page, absolute with ``BASE_URL``.
    link: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint_id,
            "pipeline": self.pipeline,
            "step": self.step,
            "title": self.title,
            "summary": self.summary,
            "waiting_since": self.waiting_since.isoformat(),
            "due": self.due.isoformat() if self.due else None,
            "overdue": self.overdue,
            "link": self.link,
        }


@dataclass(frozen=True)
class Digest(Message):
    """A daily digest: what waits for one reviewer, oldest first. The templates read it as ``message``."""

    #: The items still pending when the digest is built, oldest first.
    items: tuple[DigestItem, ...] = ()
    #: How many of them are past their deadline.
    overdue: int = 0
    #: How many more waited when it was written than ``STEPKIT["DIGEST_MAX_ITEMS"]`` lets it list.
    more: int = 0
    #: When the digest was built.
    at: datetime | None = None

    @property
    def total(self) -> int:
        """How many items wait: those listed and the ``more`` left out."""
        return len(self.items) + self.more

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "items": [item.as_dict() for item in self.items],
            "overdue": self.overdue,
            "more": self.more,
        }


def _queue_link() -> str:
    """The queue: the inbox's when it is installed (as ``Checkpoint.get_absolute_url``), else the admin's."""
    for name in ("stepkit_inbox:queue", "admin:stepkit_django_checkpoint_changelist"):
        try:
            return absolute_url(reverse(name))
        except NoReverseMatch:
            continue
    return ""


def build_digest(notification: Notification, now: datetime | None = None) -> Digest:
    """The digest of ``notification``: its items (``data["items"]``, checkpoint ids oldest first) that are still
    pending, as they are now, in one query."""
    now = now or timezone.now()
    ids = [str(pk) for pk in notification.data.get("items", [])]
    found = {
        str(cp.pk): cp
        for cp in Checkpoint.objects.filter(pk__in=ids, status=CheckpointStatus.PENDING).only(
            "id", "pipeline_name", "step", "title", "summary", "created_at", "expires_at"
        )
    }
    items = []
    for pk in ids:
        cp = found.get(pk)
        if cp is None:  # decided (or gone) since the digest was written
            continue
        try:
            link = absolute_url(cp.get_absolute_url())
        except NoReverseMatch:
            link = ""
        items.append(
            DigestItem(
                checkpoint_id=pk,
                pipeline=cp.pipeline_name,
                step=cp.step,
                title=cp.title or cp.step,
                summary=dict(cp.summary),
                waiting_since=cp.created_at,
                waiting=max(now - cp.created_at, timedelta(0)),
                due=cp.expires_at,
                overdue=cp.expires_at is not None and cp.expires_at <= now,
                link=link,
            )
        )
    return Digest(
        id=notification.key,
        event=notification.event,
        event_label=str(NotificationEvent(notification.event).label),
        pipeline="",
        run_id="",
        run_status="",
        checkpoint_id=None,
        step="",
        title=str(NotificationEvent.DIGEST.label),
        summary={},
        status="",
        due=None,
        links={key: value for key, value in {"queue": _queue_link()}.items() if value},
        data=dict(notification.data),
        items=tuple(items),
        overdue=sum(item.overdue for item in items),
        more=int(notification.data.get("more", 0) or 0),
        at=now,
    )
