"""Settings of stepkit_django, read from the ``STEPKIT`` dict in Django settings.

Values are looked up each time they are used, so ``override_settings(STEPKIT=...)``
takes effect immediately. Every key and its default is documented in
``docs/settings.md``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings

from .engine import options
from .engine.options import EngineOptions

__all__ = ["DEFAULTS", "StepkitSettings", "settings"]

DEFAULTS: dict[str, Any] = {
    # Seconds a checkpoint token stays valid; None means it never expires.
    "CHECKPOINT_MAX_AGE": None,
    # Salt of the HMAC that signs checkpoint tokens; change it to invalidate every token.
    "CHECKPOINT_SALT": "stepkit_django.checkpoint",
    # Name of the logging logger used when ``log=True``.
    "LOGGER_NAME": "stepkit_django",
    # Permission a reviewer needs when a Review does not name one.
    "DEFAULT_REVIEW_PERMISSION": "stepkit_django.review_checkpoint",
    # Largest accepted override data (edited values), in bytes of JSON.
    "MAX_OVERRIDE_BYTES": 256 * 1024,
    # How runs advance: "inline" (in the calling process), "tasks" (Django's tasks framework)
    # or "celery" (stepkit_django.contrib.celery).
    "EXECUTOR": "inline",
    # Seconds a worker holds a run without renewing its lease; renewed while steps run.
    "LEASE_SECONDS": 60,
    # Task backend alias and queue used by the "tasks" executor.
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": "default",
    # Celery queue used by the "celery" executor (None: Celery's default queue).
    "CELERY_QUEUE": None,
    # How long a claim keeps others off a checkpoint; an older claim (or one held by an
    # inactive user) no longer blocks anyone.
    "CLAIM_TIMEOUT": timedelta(minutes=30),
    # How long a worker that does not know a run's pipeline (a rolling deploy) keeps the run
    # queued and retries it before failing it.
    "UNKNOWN_PIPELINE_GRACE": timedelta(minutes=10),
    # Whether the queue's search (admin and API) also looks inside the checkpoints' contexts: no index
    # serves that, so on a large queue each search reads every context.
    "SEARCH_CONTEXT": False,
    # The notifiers of every review that does not name its own (``Review(notify=...)``), and of failed runs:
    # {name: {"BACKEND": dotted path of a BaseNotifier subclass, "OPTIONS": {keyword arguments}}}.
    "NOTIFIERS": {},
    # How many times a notification is tried before it is marked failed.
    "NOTIFY_MAX_ATTEMPTS": 5,
    # The wait before the first retry of a notification; doubled after each failed attempt.
    "NOTIFY_RETRY_DELAY": timedelta(seconds=30),
    # The longest wait between two attempts.
    "NOTIFY_RETRY_MAX_DELAY": timedelta(hours=1),
    # How long a sender holds a notification it is sending; a sender that died is replaced after it.
    "NOTIFY_LEASE": timedelta(minutes=5),
    # The most items one reviewer's daily digest lists (the oldest); the email says how many more wait.
    "DIGEST_MAX_ITEMS": 50,
    # Scheme and host put before the links of emails and webhooks ("https://review.example.com");
    # empty: links are paths.
    "BASE_URL": "",
    # The template every page of the reviewer inbox (stepkit_django.inbox) extends.
    "INBOX_BASE_TEMPLATE": "stepkit_django/inbox/base.html",
    # How long a signed action link (review.action_url) works, in seconds.
    "ACTION_LINK_MAX_AGE": 3 * 24 * 3600,
    # "required": a link lands after login and the logged-in user must be the link's user;
    # "link": the signed link stands for its user for that one decision.
    "ACTION_LINKS_LOGIN": "required",
    # Whether runs, steps and decisions are recorded as OpenTelemetry metrics and spans (stepkit_django.telemetry),
    # when opentelemetry-api is installed; nothing is recorded until the host configures an SDK provider.
    "TELEMETRY": True,
    # Old secrets (str or bytes) whose audit chain keys stepkit_verify also accepts, after SECRET_KEY's and
    # SECRET_KEY_FALLBACKS': verify-only, never used to chain new events, never added to SECRET_KEY_FALLBACKS
    # (so never accepted for sessions, password resets or signed links).
    "AUDIT_VERIFY_SECRETS": (),
}


class StepkitSettings:
    """Attribute access to the ``STEPKIT`` setting with defaults filled in."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown stepkit_django setting: {name!r}")
        user = getattr(django_settings, "STEPKIT", None) or {}
        unknown = set(user) - set(DEFAULTS)
        if unknown:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"Unknown key(s) in settings.STEPKIT: {', '.join(sorted(unknown))}. "
                f"Known keys: {', '.join(sorted(DEFAULTS))}."
            )
        return user.get(name, DEFAULTS[name])


settings = StepkitSettings()


def engine_options() -> EngineOptions:
    """The engine's options from the ``STEPKIT`` setting (read each time: ``override_settings`` works)."""
    return EngineOptions(
        checkpoint_salt=settings.CHECKPOINT_SALT,
        checkpoint_max_age=settings.CHECKPOINT_MAX_AGE,
        logger_name=settings.LOGGER_NAME,
    )


options.use(engine_options)  # the engine reads no settings itself: these are passed in
