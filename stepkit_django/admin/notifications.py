"""Read-only notifications in the admin: who was told what, when, and what failed; "Send again" for failures.

The same words serve the Notifications list and the review page's "Notifications" section
(:func:`notification_rows`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import permissions
from ..conf import settings
from ..models import Notification
from ..notifications import events
from ..review_spec import default_title
from ..sentences import actor_name, local_time
from ..status import NotificationStatus
from .runs import ReadOnlyMixin

__all__ = ["NotificationAdmin", "failed_notifications", "notification_rows", "recipient_name", "status_sentence"]

#: The checkpoint's columns the list leaves unread (its title and step are enough to name it).
CHECKPOINT_DEFERRED = ("checkpoint__context", "checkpoint__override_data", "checkpoint__token", "checkpoint__review")


def recipient_name(notification: Notification) -> str:
    """Who was told: the user's full name (else username), or the address when there is no user."""
    if notification.recipient_id is not None and notification.recipient is not None:
        return actor_name(notification.recipient)
    return notification.address or "—"


def status_sentence(notification: Notification) -> str:
    """The notification's state in plain words: sent when, waiting, trying again when, or given up."""
    if notification.status == NotificationStatus.SENT:
        return gettext("Sent %(when)s") % {"when": local_time(notification.sent_at)}
    if notification.status == NotificationStatus.FAILED:
        return ngettext(
            "Not delivered: %(count)d attempt failed",
            "Not delivered: all %(count)d attempts failed",
            notification.attempts,
        ) % {"count": notification.attempts}
    if notification.last_error:
        return gettext("Attempt %(attempt)d of %(most)d failed; trying again %(when)s") % {
            "attempt": notification.attempts,
            "most": max(int(settings.NOTIFY_MAX_ATTEMPTS), notification.attempts),
            "when": local_time(notification.next_attempt_at),
        }
    return gettext("Waiting to be sent")


def _time(moment: Any) -> SafeString | str:
    if moment is None:
        return "—"
    return format_html('<time datetime="{}">{}</time>', timezone.localtime(moment).isoformat(), local_time(moment))


def notification_rows(notifications: QuerySet[Notification]) -> list[dict[str, Any]]:
    """The review page's rows: who was told what, by which channel, when, and what went wrong (one query)."""
    rows = []
    for notification in notifications.select_related("recipient").order_by("created_at", "pk"):
        rows.append(
            {
                "pk": notification.pk,
                "who": recipient_name(notification),
                "what": notification.get_event_display(),
                "channel": notification.channel,
                "when": local_time(notification.created_at),
                "iso": timezone.localtime(notification.created_at).isoformat(),
                "status": notification.status,
                "state": status_sentence(notification),
                "failed": notification.status == NotificationStatus.FAILED,
                "error": notification.last_error,
            }
        )
    return rows


def failed_notifications(request: HttpRequest) -> dict[str, Any]:
    """The queue overview's count of the failed deliveries ``request.user`` may see, and the link to them."""
    changelist = reverse("admin:stepkit_django_notification_changelist")
    return {
        "failed_notifications": Notification.objects.visible_to(request.user)
        .filter(status=NotificationStatus.FAILED)
        .count(),
        "failed_notifications_url": f"{changelist}?status__exact={NotificationStatus.FAILED}",
    }


#: The fields of one notification's page, all read-only.
DETAIL_FIELDS = [
    "event",
    "told",
    "channel",
    "state",
    "attempts",
    "problem",
    "created",
    "sent",
    "checkpoint_link",
    "run_link",
    "actor_name",
]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The notifications people may see (``Notification.objects.visible_to``), newest first; nothing is edited
    by hand. Run managers may send failed ones again."""

    class Media:
        css = {"all": ["stepkit_django/admin.css"]}  # links in text underlined (Django 5.2 does not)

    list_display = [
        "created",
        "event",
        "told",
        "channel",
        "state",
        "attempts",
        "problem",
        "sent",
        "checkpoint_link",
        "run_link",
    ]
    list_display_links = ["created"]
    list_filter = ["status", "event", "channel"]
    search_fields = [
        "recipient__username",
        "recipient__first_name",
        "recipient__last_name",
        "recipient__email",
        "address",
    ]
    search_help_text = _("A username, a name or an email address of the person told.")
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    actions = ["send_again"]
    fields = tuple(DETAIL_FIELDS)
    readonly_fields = DETAIL_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        return (
            Notification.objects.visible_to(request.user)
            .select_related("recipient", "checkpoint", "actor")
            .defer(*CHECKPOINT_DEFERRED)
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever sees runs or checkpoints (reviewers, those who start runs, run managers); the queryset narrows.
        user = request.user
        return (
            user.has_perm(permissions.REVIEW_PERMISSION)
            or permissions.can_start_runs(user)
            or user.has_perm(permissions.MANAGE_RUNS_PERMISSION)
            or super().has_view_permission(request, obj)
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # Not Django's "Select notification to view": nothing here is selected to be changed.
        return super().changelist_view(request, {"title": gettext("Notifications"), **(extra_context or {})})

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return permissions.can_retry_notifications(request.user)

    @admin.action(description=_("Send the selected failed notifications again"), permissions=["retry"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        retried = events.retry_failed(selected)
        if not retried:
            self.message_user(
                request, gettext("None of the selected notifications had failed: nothing to send."), messages.WARNING
            )
            return
        text = ngettext(
            "%(count)d failed notification is being sent again.",
            "%(count)d failed notifications are being sent again.",
            len(retried),
        ) % {"count": len(retried)}
        left = len(selected) - len(retried)
        if left:
            text += " " + ngettext(
                "%(count)d other had not failed and was left as it was.",
                "%(count)d others had not failed and were left as they were.",
                left,
            ) % {"count": left}
        self.message_user(request, text, messages.SUCCESS)

    @admin.display(description=_("when"), ordering="created_at")
    def created(self, obj: Notification) -> SafeString | str:
        return _time(obj.created_at)

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent(self, obj: Notification) -> SafeString | str:
        return _time(obj.sent_at)

    @admin.display(description=_("told"), ordering="recipient__username")
    def told(self, obj: Notification) -> str:
        return recipient_name(obj)

    @admin.display(description=_("status"), ordering="status")
    def state(self, obj: Notification) -> str:
        return status_sentence(obj)

    @admin.display(description=_("last error"))
    def problem(self, obj: Notification) -> str:
        return obj.last_error or "—"

    @admin.display(description=_("caused by"))
    def actor_name(self, obj: Notification) -> str:
        return actor_name(obj.actor if obj.actor_id else None)

    @admin.display(description=_("review item"))
    def checkpoint_link(self, obj: Notification) -> SafeString | str:
        checkpoint = obj.checkpoint if obj.checkpoint_id else None
        if checkpoint is None:
            return "—"
        url = reverse("admin:stepkit_django_checkpoint_change", args=[checkpoint.pk])
        return format_html(
            '<a href="{}">{}</a>', url, checkpoint.title or default_title(checkpoint.pipeline_name, checkpoint.step)
        )

    @admin.display(description=_("run"))
    def run_link(self, obj: Notification) -> SafeString | str:
        if obj.run_id is None:  # a digest lists items of several runs
            return "—"
        url = reverse("admin:stepkit_django_pipelinerun_change", args=[obj.run_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.run_id)[:8])
