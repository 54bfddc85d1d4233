"""The queue overview: pending work per pipeline and step, and decisions per day as an SVG chart."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.db.models.functions import TruncDate
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, pgettext_lazy

from ..models import Checkpoint
from ..status import CheckpointStatus

DECIDED = (CheckpointStatus.APPROVED, CheckpointStatus.REJECTED, CheckpointStatus.EXPIRED)
COLOURS = {"approved": "#2e7d32", "rejected": "#c62828", "expired": "#9e9e9e"}
#: The chart's words for each decision (lower case: "3 approved").
DECISION_WORDS = {
    "approved": pgettext_lazy("decisions chart", "approved"),
    "rejected": pgettext_lazy("decisions chart", "rejected"),
    "expired": pgettext_lazy("decisions chart", "expired"),
}


def overview_context(queryset: QuerySet[Checkpoint], days: int = 30) -> dict[str, Any]:
    """The overview of ``queryset`` (the user's queue): pending items per pipeline and step, decisions per day
    over the last ``days`` days (in the current time zone).

    ``queryset`` must not join a multi-valued relation (the queue's visibility rules use ``EXISTS``): rows
    are counted with ``COUNT(*)``, which a join would multiply, rather than ``COUNT(DISTINCT id)``,
    which sorts every row it counts.
    """
    now = timezone.now()
    pending = queryset.filter(status=CheckpointStatus.PENDING)
    # The counts and the oldest from the queue index alone; the overdue ones apart, from the deadline index
    # (the deadline is not in the queue index: counting it with the rest would read every pending row).
    per_step: list[dict[str, Any]] = [
        dict(row)
        for row in pending.values("pipeline_name", "step")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
        .order_by("pipeline_name", "step")
    ]
    overdue = {
        (row["pipeline_name"], row["step"]): row["n"]
        for row in pending.filter(expires_at__lt=now).values("pipeline_name", "step").annotate(n=Count("pk")).order_by()
    }
    for row in per_step:
        row["overdue"] = overdue.get((row["pipeline_name"], row["step"]), 0)
    since = timezone.localdate(now) - timedelta(days=days - 1)
    # A range on decided_at itself (from the first day's midnight), which its index serves; a condition on
    # the date of decided_at in the time zone would compute it for every checkpoint.
    start = timezone.make_aware(datetime.combine(since, time.min))
    decided = (
        queryset.filter(status__in=DECIDED, decided_at__gte=start)
        .annotate(day=TruncDate("decided_at"))
        .values("day", "status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    per_day: dict[Any, dict[str, int]] = {since + timedelta(days=i): {} for i in range(days)}
    for day in decided:
        per_day.setdefault(day["day"], {})[day["status"]] = day["count"]
    return {
        "per_step": per_step,
        "pending_total": sum(r["count"] for r in per_step),
        "overdue_total": sum(r["overdue"] for r in per_step),
        "oldest_at": min((r["oldest"] for r in per_step), default=None),
        "decisions_total": sum(sum(v.values()) for v in per_day.values()),
        "chart": decisions_chart(per_day),
    }


def decisions_chart(per_day: dict[Any, dict[str, int]], width: int = 720, height: int = 200) -> SafeString:
    """A stacked bar chart of decisions per day, as inline SVG (no JavaScript, no CDN)."""
    days = sorted(per_day)
    top = max([sum(per_day[d].values()) for d in days] + [1])
    left, bottom, plot_h = 30, 24, height - 34
    bar_w = (width - left - 10) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y: float = height - bottom
        x = left + i * bar_w
        for status in ("approved", "rejected", "expired"):
            count = per_day[day].get(status, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            bars.append(
                (
                    f"{x + 1:.1f}",
                    f"{y:.1f}",
                    f"{bar_w - 2:.1f}",
                    f"{h:.1f}",
                    COLOURS[status],
                    gettext("%(day)s: %(count)d %(decision)s")
                    % {"day": day, "count": count, "decision": DECISION_WORDS[status]},
                )
            )
    rects = format_html_join("", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars)
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
        [
            (f"{left + i * bar_w + bar_w / 2:.1f}", height - 8, dateformat.format(day, "d M"))
            for i, day in enumerate(days)
            if i % 5 == 0
        ],
    )
    legend = format_html_join(
        "",
        '<rect x="{}" y="4" width="10" height="10" fill="{}"></rect><text x="{}" y="13" font-size="11">{}</text>',
        [
            (left + 10 + i * 90, colour, left + 24 + i * 90, DECISION_WORDS[status])
            for i, (status, colour) in enumerate(COLOURS.items())
        ],
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" class="stepkit-chart">'
        '<text x="4" y="{}" font-size="10">{}</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"></line>{}{}{}</svg>',
        gettext("Decisions per day"),
        width,
        height,
        width,
        height,
        height - bottom - plot_h + 10,
        top,
        left,
        height - bottom,
        width - 10,
        height - bottom,
        rects,
        labels,
        legend,
    )
