"""Notifiers: how a notification reaches its recipient. A small base class and two built in.

The contract of a notifier (a subclass of :class:`BaseNotifier`):

* :meth:`~BaseNotifier.recipients` is called inside the transaction of the event, once per event,
  with an :class:`Occasion`; it returns the recipients: users, or addresses (strings). One
  :class:`~stepkit_django.models.Notification` row is written per recipient (the actor of the event
  is left out, always). The default is one recipient, :meth:`~BaseNotifier.address` (a channel such
  as a webhook is told once per event).
* :meth:`~BaseNotifier.send` is called after the transaction committed, by a worker or (inline) the
  calling process, outside any transaction: it must deliver the one notification or raise. Any
  exception counts as a failed attempt, retried later; returning counts as delivered. It may be
  called again for the same notification after a worker died mid-send: pass
  ``notification.key`` on where the receiver can de-duplicate.

This module imports no models: ``pipelines.py`` modules build notifiers for ``Review(notify=[...])``
at import time.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string

from ..exceptions import NotificationFailed, NotifierMisconfigured
from .signing import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from ..models import Checkpoint, Notification, PipelineRun
    from .messages import Message

__all__ = [
    "BaseNotifier",
    "EmailNotifier",
    "Occasion",
    "Recipient",
    "WebhookNotifier",
    "channels_of",
    "declare",
    "get_notifier",
]

#: A recipient: a user, or an address (an email address for :class:`EmailNotifier`).
Recipient = Any


@dataclass(frozen=True)
class Occasion:
    """What happened, as a notifier's :meth:`~BaseNotifier.recipients` sees it (inside the event's transaction)."""

    #: A :class:`~stepkit_django.status.NotificationEvent` value.
    event: str
    run: PipelineRun
    #: The checkpoint the event is about; None for ``run_failed`` of a step that was not a review.
    checkpoint: Checkpoint | None = None
    #: Who caused it (never told); None for the system.
    actor: Any = None
    #: What the event adds: ``comment``, ``error_type``, ``to_users``/``to_groups`` of a reassignment…
    data: Mapping[str, Any] = field(default_factory=dict)


class BaseNotifier:
    """The base of notifiers. Subclasses must override :meth:`send`; see the module's contract."""

    #: The channel's name when none is given: the key of the notifier's rows and how reviews name it.
    default_name: ClassVar[str] = "notifier"

    def __init__(self, *, name: str | None = None, events: Iterable[str] | None = None) -> None:
        self.name = str(name or self.default_name)
        #: The events this notifier tells (``NotificationEvent`` values); None: all of them.
        self.events = frozenset(events) if events is not None else None

    def handles(self, event: str) -> bool:
        """Whether this notifier tells ``event``."""
        return self.events is None or event in self.events

    def recipients(self, occasion: Occasion) -> Iterable[Recipient]:
        """Who is told of ``occasion``: users or addresses. Default: one, :meth:`address`."""
        return [self.address()]

    def address(self) -> str:
        """What the rows of a recipient-less notifier show as their address (no secrets)."""
        return ""

    def send(self, notification: Notification, message: Message) -> None:
        """Deliver ``notification`` (its text in ``message``), or raise."""
        raise NotImplementedError("subclasses of BaseNotifier must provide a send() method")

    def _settings(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseNotifier) and type(self) is type(other) and self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class EmailNotifier(BaseNotifier):
    """Emails through Django's email framework (``EMAIL_BACKEND``): a plain-text and an HTML part.

    The templates, which a project overrides by putting its own at the same path:
    ``stepkit_django/email/<event>_subject.txt``, ``<event>.txt`` and ``<event>.html``.
    Recipients: the users the event's rules name (see :mod:`stepkit_django.notifications.recipients`),
    or those ``to(occasion)`` returns (users or addresses); users without an email address are skipped.
    """

    default_name = "email"

    def __init__(
        self,
        *,
        to: Callable[[Occasion], Iterable[Recipient]] | str | None = None,
        from_email: str | None = None,
        language: str | None = None,
        using: str | None = None,
        name: str | None = None,
        events: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name=name, events=events)
        #: A callable(occasion) returning users or addresses (or its dotted path); None: the event's rules.
        self.to = import_string(to) if isinstance(to, str) else to
        #: The sender; None: ``DEFAULT_FROM_EMAIL``.
        self.from_email = from_email
        #: The language of the emails; None: ``LANGUAGE_CODE``.
        self.language = language
        #: The ``MAILERS`` alias to send with (Django 6.1+); None: the default mailer (or ``EMAIL_BACKEND``).
        self.using = using

    def recipients(self, occasion: Occasion) -> Iterable[Recipient]:
        from .recipients import users_for

        found = self.to(occasion) if self.to is not None else users_for(occasion)
        return [r for r in found if isinstance(r, str) or bool(getattr(r, "email", None))]

    def render(self, notification: Notification, message: Message) -> tuple[str, str, str]:
        """The subject, the plain text and the HTML of ``notification``'s email."""
        from django.conf import settings
        from django.template.loader import render_to_string
        from django.utils import translation

        from .messages import action_links

        context: dict[str, Any] = {
            "message": message,
            "notification": notification,
            "recipient": notification.recipient,
        }
        base = f"stepkit_django/email/{notification.event}"
        with translation.override(self.language or settings.LANGUAGE_CODE):
            context["actions"] = action_links(notification)  # made for this recipient, now
            subject = " ".join(render_to_string(f"{base}_subject.txt", context).split())
            text = render_to_string(f"{base}.txt", context)
            html = render_to_string(f"{base}.html", context)
        return subject, text, html

    def send(self, notification: Notification, message: Message) -> None:
        from django.core.mail import EmailMultiAlternatives

        if not notification.address:
            raise NotificationFailed("The recipient has no email address")
        if getattr(message, "items", None) == ():
            return  # a digest whose items were all decided before it was sent: nothing waits any more
        subject, text, html = self.render(notification, message)
        email = EmailMultiAlternatives(
            subject,
            text,
            self.from_email,
            [notification.address],
            headers={"X-Stepkit-Notification": notification.key},
        )
        email.attach_alternative(html, "text/html")
        if self.using is not None:
            email.send(using=self.using)  # type: ignore[call-arg,unused-ignore]  # Django 6.1+
        else:
            email.send()


class WebhookNotifier(BaseNotifier):
    """POSTs the event as JSON to ``url``, signed with ``secret`` (see :mod:`stepkit_django.notifications.signing`).

    Headers: ``Content-Type: application/json``, ``X-Stepkit-Event`` (the event),
    ``Idempotency-Key`` (the notification's unique key: the same on every attempt, so a receiver
    can drop a repeat) and, with a secret, ``X-Stepkit-Signature``. Any answer other than 2xx,
    and no answer within ``timeout`` seconds, is a failed attempt. Override :meth:`payload` to
    post another body (a chat's incoming webhook, for example).
    """

    default_name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        *,
        timeout: float = 5.0,
        name: str | None = None,
        events: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name=name, events=events)
        parsed = urllib.parse.urlsplit(str(url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise NotifierMisconfigured(f"WebhookNotifier(url=...) must be an http:// or https:// URL, got {url!r}")
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 60):
            raise NotifierMisconfigured("WebhookNotifier(timeout=...) must be a number of seconds, at most 60")
        self.url = str(url)
        self.secret = secret
        self.timeout = float(timeout)

    def address(self) -> str:
        parsed = urllib.parse.urlsplit(self.url)  # the path and query may hold a token: not shown
        return f"{parsed.scheme}://{parsed.netloc}"

    def payload(self, notification: Notification, message: Message) -> Mapping[str, Any]:
        """The JSON body: :meth:`~stepkit_django.notifications.messages.Message.as_dict`."""
        return message.as_dict()

    def send(self, notification: Notification, message: Message) -> None:
        body = json.dumps(self.payload(notification, message), cls=DjangoJSONEncoder).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "stepkit-django",
            "X-Stepkit-Event": notification.event,
            "Idempotency-Key": notification.key,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if not 200 <= response.status < 300:
                raise NotificationFailed(f"The webhook answered {response.status}")


# -- finding a notifier by name ----------------------------------------------------------------

_lock = threading.Lock()
#: The notifiers of ``Review(notify=[...])`` by name, declared when the reviews are built (at import).
_declared: dict[str, BaseNotifier] = {}


def declare(notifier: BaseNotifier) -> None:
    """Make ``notifier`` findable by its name (what ``Review(notify=[...])`` does with its notifiers).

    Raises :class:`NotifierMisconfigured` when another notifier, set up differently, has the name.
    """
    with _lock:
        known = _declared.get(notifier.name)
        if known is not None and known != notifier:
            raise NotifierMisconfigured(
                f"Two notifiers are named {notifier.name!r} with different settings: give each its own name=..."
            )
        _declared[notifier.name] = notifier


def _configured() -> Mapping[str, Any]:
    from ..conf import settings

    configured = settings.NOTIFIERS
    if not isinstance(configured, Mapping):
        raise NotifierMisconfigured('STEPKIT["NOTIFIERS"] must be a dict: {name: {"BACKEND": ..., "OPTIONS": {...}}}')
    return configured


def get_notifier(name: str) -> BaseNotifier:
    """The notifier named ``name``: from ``STEPKIT["NOTIFIERS"]``, else from ``Review(notify=[...])``."""
    configured = _configured()
    if name in configured:
        spec = configured[name]
        if not isinstance(spec, Mapping) or "BACKEND" not in spec:
            raise NotifierMisconfigured(f'STEPKIT["NOTIFIERS"][{name!r}] must be a dict with a "BACKEND" dotted path')
        try:
            backend = import_string(str(spec["BACKEND"]))
        except ImportError as exc:
            raise NotifierMisconfigured(f'STEPKIT["NOTIFIERS"][{name!r}]: cannot import its BACKEND: {exc}') from exc
        if not (isinstance(backend, type) and issubclass(backend, BaseNotifier)):
            raise NotifierMisconfigured(f'STEPKIT["NOTIFIERS"][{name!r}]: its BACKEND is not a BaseNotifier subclass')
        try:
            notifier: BaseNotifier = backend(name=name, **dict(spec.get("OPTIONS") or {}))
        except TypeError as exc:
            raise NotifierMisconfigured(f'STEPKIT["NOTIFIERS"][{name!r}]: invalid OPTIONS: {exc}') from exc
        return notifier
    with _lock:
        declared = _declared.get(name)
    if declared is None:
        raise NotifierMisconfigured(
            f'No notifier is named {name!r}: add it to STEPKIT["NOTIFIERS"] or to a Review(notify=[...])'
        )
    return declared


def channels_of(review: Mapping[str, Any] | None) -> list[str]:
    """The names of the notifiers that tell a checkpoint's events: its review's (``notify``, as stored in the
    checkpoint's settings), else every one of ``STEPKIT["NOTIFIERS"]``."""
    names = (review or {}).get("notify")
    if names is None:
        return [str(name) for name in _configured()]
    return [str(name) for name in names]
