"""What a notification says, built when it is sent: the email templates' ``message`` and a webhook's body."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.urls import NoReverseMatch, reverse

from ..conf import settings
from ..models import Notification
from ..status import NotificationEvent

__all__ = ["Message", "absolute_url", "build"]


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
    """The message of ``notification``, from its checkpoint and run as they are now."""
    run, cp = notification.run, notification.checkpoint
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
