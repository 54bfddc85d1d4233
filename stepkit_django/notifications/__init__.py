"""Notifications and reminders: telling reviewers that something waits for them, and starters what became of it.

* :mod:`~stepkit_django.notifications.notifiers`: :class:`BaseNotifier`, :class:`EmailNotifier`,
  :class:`WebhookNotifier` and how a notifier is found by name;
* :mod:`~stepkit_django.notifications.signing`: webhook signatures, :func:`verify_signature` for receivers;
* :mod:`~stepkit_django.notifications.recipients`: who is told of each event;
* :mod:`~stepkit_django.notifications.events`: the rows written with each event, sent after the commit;
* :mod:`~stepkit_django.notifications.delivery`: one attempt (claimed, idempotent), retries with backoff;
* :mod:`~stepkit_django.notifications.messages`: what a notification says (templates, webhook bodies).
* :mod:`~stepkit_django.notifications.digest`: the daily digest (``manage.py stepkit_digest``).

This package's top level imports no models: ``pipelines.py`` modules use its notifiers.
"""

from .notifiers import BaseNotifier, EmailNotifier, Occasion, WebhookNotifier
from .signing import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "BaseNotifier",
    "EmailNotifier",
    "Occasion",
    "WebhookNotifier",
    "sign",
    "verify_signature",
]
