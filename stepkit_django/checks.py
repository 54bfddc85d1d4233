"""System checks for stepkit_django's configuration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from .conf import DEFAULTS


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    user = getattr(django_settings, "STEPKIT", {})
    if not isinstance(user, dict):
        return [Error("settings.STEPKIT must be a dict", id="stepkit_django.E001")]
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"Unknown key {key!r} in settings.STEPKIT",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}",
                id="stepkit_django.E002",
            )
        )
    limit = user.get("MAX_OVERRIDE_BYTES", DEFAULTS["MAX_OVERRIDE_BYTES"])
    if not isinstance(limit, int) or limit <= 0:
        errors.append(Error("STEPKIT['MAX_OVERRIDE_BYTES'] must be a positive integer", id="stepkit_django.E003"))
    for key, check_id in (("CLAIM_TIMEOUT", "stepkit_django.E004"), ("UNKNOWN_PIPELINE_GRACE", "stepkit_django.E005")):
        value = user.get(key, DEFAULTS[key])
        if not isinstance(value, timedelta) or value.total_seconds() <= 0:
            errors.append(Error(f"STEPKIT[{key!r}] must be a positive datetime.timedelta", id=check_id))
    executor = user.get("EXECUTOR", DEFAULTS["EXECUTOR"])
    from django.core.exceptions import ImproperlyConfigured

    from .execution.executors import load_executor

    try:
        load_executor(str(executor))
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="stepkit_django.E006"))
    errors.extend(_check_notifications(user))
    errors.extend(_check_action_links(user))
    telemetry = user.get("TELEMETRY", DEFAULTS["TELEMETRY"])
    if not isinstance(telemetry, bool):
        errors.append(Error(f"STEPKIT['TELEMETRY'] must be True or False, got {telemetry!r}", id="stepkit_django.E010"))
    errors.extend(_check_audit_keys(user))
    return errors


def _check_audit_keys(user: dict[str, Any]) -> list[CheckMessage]:
    """E011: ``AUDIT_VERIFY_SECRETS`` is not a list or tuple of non-empty secrets. The message never shows
    the value: it holds secrets."""
    from django.utils.translation import gettext

    from .chain import valid_verify_secrets

    if valid_verify_secrets(user.get("AUDIT_VERIFY_SECRETS", DEFAULTS["AUDIT_VERIFY_SECRETS"])):
        return []
    return [
        Error(
            gettext("STEPKIT['AUDIT_VERIFY_SECRETS'] must be a list or tuple of non-empty secrets (str or bytes)"),
            hint=gettext(
                "List the old SECRET_KEY values whose audit trails stepkit_verify must still verify, e.g. "
                "[os.environ['OLD_SECRET_KEY']]; an empty list verifies with SECRET_KEY and "
                "SECRET_KEY_FALLBACKS only."
            ),
            id="stepkit_django.E011",
        )
    ]


def _check_action_links(user: dict[str, Any]) -> list[CheckMessage]:
    """E009: ``ACTION_LINK_MAX_AGE`` not a positive number of seconds, or ``ACTION_LINKS_LOGIN`` unknown."""
    errors: list[CheckMessage] = []
    from .links import MAX_AGE_LIMIT, valid_max_age

    if valid_max_age(user.get("ACTION_LINK_MAX_AGE", DEFAULTS["ACTION_LINK_MAX_AGE"])) is None:
        errors.append(
            Error(
                "STEPKIT['ACTION_LINK_MAX_AGE'] must be a number of seconds (or a timedelta) between 1 second "
                f"and {MAX_AGE_LIMIT.days} days",
                id="stepkit_django.E009",
            )
        )
    mode = user.get("ACTION_LINKS_LOGIN", DEFAULTS["ACTION_LINKS_LOGIN"])
    if mode not in ("required", "link"):
        errors.append(
            Error(
                f'STEPKIT[\'ACTION_LINKS_LOGIN\'] must be "required" or "link", got {mode!r}',
                hint='"required" is the safe default: an unknown value is treated as it.',
                id="stepkit_django.E009",
            )
        )
    return errors


def _check_notifications(user: dict[str, Any]) -> list[CheckMessage]:
    """E007: a notifier of ``NOTIFIERS`` that cannot be built; E008: a notification setting out of range."""
    from .exceptions import NotifierMisconfigured
    from .notifications.notifiers import get_notifier

    errors: list[CheckMessage] = []
    notifiers = user.get("NOTIFIERS", DEFAULTS["NOTIFIERS"])
    if not isinstance(notifiers, dict):
        errors.append(Error("STEPKIT['NOTIFIERS'] must be a dict of notifiers by name", id="stepkit_django.E007"))
    else:
        for name in sorted(notifiers):
            try:
                get_notifier(name)
            except NotifierMisconfigured as exc:
                errors.append(Error(str(exc), id="stepkit_django.E007"))
    attempts = user.get("NOTIFY_MAX_ATTEMPTS", DEFAULTS["NOTIFY_MAX_ATTEMPTS"])
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        errors.append(
            Error("STEPKIT['NOTIFY_MAX_ATTEMPTS'] must be a whole number, 1 or more", id="stepkit_django.E008")
        )
    most = user.get("DIGEST_MAX_ITEMS", DEFAULTS["DIGEST_MAX_ITEMS"])
    if isinstance(most, bool) or not isinstance(most, int) or most < 1:
        errors.append(Error("STEPKIT['DIGEST_MAX_ITEMS'] must be a whole number, 1 or more", id="stepkit_django.E008"))
    for key in ("NOTIFY_RETRY_DELAY", "NOTIFY_RETRY_MAX_DELAY", "NOTIFY_LEASE"):
        value = user.get(key, DEFAULTS[key])
        if not isinstance(value, timedelta) or value.total_seconds() < 0 or (key == "NOTIFY_LEASE" and not value):
            errors.append(
                Error(f"STEPKIT[{key!r}] must be a datetime.timedelta, not negative", id="stepkit_django.E008")
            )
    return errors
