"""Audit events told as sentences for people: "Approved by Ann Smith (1 of 2)".

One function per action (:data:`TELLERS`), in one place, for every page that shows
the trail (the admin's review page, run pages and audit events; any other reader
may use :func:`tell` too). Times are in the current time zone (Django's
``localtime``), actors are named by their full name when they have one, else by
their username. Nothing is lost: the keys of the event's data that a sentence does
not tell are returned in :attr:`Told.rest`, for a details element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import dateformat, timezone
from django.utils.formats import number_format
from django.utils.text import get_text_list
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from .audit import redacted
from .models import AuditEvent
from .status import AuditAction

__all__ = ["TELLERS", "Told", "actor_name", "local_time", "tell"]

# Translated, as Django's own DATE_FORMAT is: each language writes dates its way ("3 déc. 09:34").
#: How the trail writes a moment: ``3 Dec 2026, 09:34`` (the characters of Django's ``date`` filter).
TIME_FORMAT = pgettext_lazy("a moment in the audit trail (Django date format)", "j M Y, H:i")
#: The same within the current year: ``3 Dec 09:34``.
TIME_FORMAT_THIS_YEAR = pgettext_lazy("a moment of this year in the audit trail (Django date format)", "j M H:i")


@dataclass(frozen=True)
class Told:
    """What an event says: the sentence, the edits of an ``edited`` event, and the data the sentence leaves out."""

    sentence: str
    #: ``{key: {"before": ..., "after": ...}}`` of an edit.
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The event data's keys that the sentence does not tell, with their values.
    rest: dict[str, Any] = field(default_factory=dict)


def actor_name(user: Any) -> str:
    """A user's full name when set, else the username; "the system" for no user."""
    if user is None:
        return gettext("the system")
    full = getattr(user, "get_full_name", lambda: "")() or ""
    return str(full).strip() or str(user.get_username())


def local_time(moment: datetime | str | None) -> str:
    """``moment`` in the current time zone, as ``3 Dec 09:34`` (with the year when it is not this one)."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return str(moment)
    if moment is None:
        return "—"
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    local = timezone.localtime(moment)
    same_year = local.year == timezone.localtime().year
    return dateformat.format(local, str(TIME_FORMAT_THIS_YEAR if same_year else TIME_FORMAT))


class _Data:
    """An event's data that remembers which keys a sentence told."""

    def __init__(self, data: Mapping[str, Any], actor_username: str = "") -> None:
        self._data = dict(data)
        self.told: set[str] = set()
        #: The actor's username, which the data's own user references (``claimed_by``) are.
        self.actor_username = actor_username

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._data:
            self.told.add(key)
        return self._data.get(key, default)

    def peek(self, key: str, default: Any = None) -> Any:
        """The value, without counting it as told (the sentence says less than it holds)."""
        return self._data.get(key, default)

    def rest(self) -> dict[str, Any]:
        return {key: value for key, value in self._data.items() if key not in self.told}


def _names(values: Iterable[Any]) -> str:
    return str(get_text_list([str(value) for value in values], gettext("and")))


def _assignees(assignment: Mapping[str, Any] | None) -> str:
    assignment = assignment or {}
    return _names([*(assignment.get("groups") or []), *(assignment.get("users") or [])])


def _duration(milliseconds: Any) -> str:
    if not isinstance(milliseconds, (int, float)):
        return str(milliseconds)
    if milliseconds < 10:
        return gettext("%(ms)s ms") % {"ms": number_format(round(milliseconds, 1), 1)}
    if milliseconds < 1000:
        return gettext("%(ms)s ms") % {"ms": number_format(round(milliseconds), 0)}
    return gettext("%(s)s s") % {"s": number_format(round(milliseconds / 1000, 1), 1)}


Teller = Callable[[str, _Data], str]


def _run_started(actor: str, data: _Data) -> str:
    if data.peek("forked_from"):  # the ids stay in the details
        return gettext("Run started by %(actor)s as a rerun from the review of step %(step)s") % {
            "actor": actor,
            "step": data.get("step"),
        }
    version = data.get("version")
    if version is None:
        return gettext("Run started by %(actor)s") % {"actor": actor}
    return gettext("Run started by %(actor)s (pipeline version %(version)s)") % {"actor": actor, "version": version}


def _step_completed(actor: str, data: _Data) -> str:
    return gettext("Step %(step)s completed in %(duration)s") % {
        "step": data.get("step", "?"),
        "duration": _duration(data.get("duration_ms")),
    }


def _paused(actor: str, data: _Data) -> str:
    step = data.get("step")
    names = [*(data.get("assigned_groups") or []), *(data.get("assigned_users") or [])]
    parts = [
        gettext("Paused at step %(step)s for review by %(assignees)s") % {"step": step, "assignees": _names(names)}
        if names
        else gettext("Paused at step %(step)s for review") % {"step": step}
    ]
    expires = data.get("expires_at")
    if expires:
        parts.append(gettext("due %(time)s") % {"time": local_time(expires)})
    if data.peek("reopened_from"):  # the id stays in the details
        parts.append(gettext("opened again by a retry"))
    if data.peek("rerun_of"):
        parts.append(gettext("opened again by a rerun"))
    return ", ".join(parts)


def _claimed(actor: str, data: _Data) -> str:
    if data.get("via") == "claim_next":
        return gettext("Claimed by %(actor)s (next in the queue)") % {"actor": actor}
    return gettext("Claimed by %(actor)s") % {"actor": actor}


def _released(actor: str, data: _Data) -> str:
    holder = data.get("claimed_by")
    reason = data.get("reason")
    if data.get("taken_over_by") is not None or reason:
        if reason == "holder inactive":
            text = gettext("The claim of %(holder)s lapsed (their account is inactive); taken over by %(actor)s")
        else:
            text = gettext("The claim of %(holder)s expired; taken over by %(actor)s")
        return text % {"holder": holder, "actor": actor}
    if holder is None or holder == data.actor_username:
        return gettext("Claim released by %(actor)s") % {"actor": actor}
    return gettext("The claim of %(holder)s released by %(actor)s") % {"holder": holder, "actor": actor}


def _reassigned(actor: str, data: _Data) -> str:
    before, after = _assignees(data.get("before")), _assignees(data.get("after"))
    if data.get("kept_from_revision") is not None:  # a new revision keeping a manager's choice of reviewers
        data.get("kept_from")  # told by the revision number
        return gettext("Kept the assignees %(actor)s chose on revision %(revision)s: %(after)s") % {
            "actor": actor,
            "revision": data.get("kept_from_revision"),
            "after": after or gettext("nobody (they were deleted)"),
        }
    if not before:
        return gettext("Reassigned by %(actor)s to %(after)s") % {"actor": actor, "after": after}
    return gettext("Reassigned by %(actor)s from %(before)s to %(after)s") % {
        "actor": actor,
        "before": before,
        "after": after,
    }


def _edited(actor: str, data: _Data) -> str:
    keys = list(data.get("changes") or {})
    return gettext("Edited %(keys)s by %(actor)s") % {"keys": _names(keys), "actor": actor}


def _approved(actor: str, data: _Data) -> str:
    if data.get("automatic"):
        parts = [gettext("Approved automatically when the deadline passed")]
        applied, not_applied = data.get("edits_applied") or [], data.get("edits_not_applied") or []
        if applied:
            parts.append(gettext("with the edits to %(keys)s") % {"keys": _names(applied)})
        if not_applied:
            parts.append(gettext("without the unapproved edits to %(keys)s") % {"keys": _names(not_applied)})
        return ", ".join(parts)
    count, required = data.get("approvals"), data.get("required")
    if data.get("group"):  # a per-group quorum: the group it counted for says more than a total
        said = gettext("Approved by %(actor)s for %(group)s") % {"actor": actor, "group": data["group"]}
    elif isinstance(required, int) and required > 1:
        said = gettext("Approved by %(actor)s (%(count)s of %(required)s)") % {
            "actor": actor,
            "count": count,
            "required": required,
        }
    else:
        said = gettext("Approved by %(actor)s") % {"actor": actor}
    labels, _key = data.get("choice_labels"), data.get("choice")  # the sentence tells both
    if isinstance(labels, list) and labels:  # Review(choices=...): stored untranslated, translated here
        chosen = ", ".join(f"“{gettext(str(label))}”" for label in labels)
        said = gettext("%(approved)s, choosing %(choices)s") % {"approved": said, "choices": chosen}
    return said


def _rejected(actor: str, data: _Data) -> str:
    return gettext("Rejected by %(actor)s") % {"actor": actor}


def _changes_requested(actor: str, data: _Data) -> str:
    step = data.get("to_step")
    revision = data.get("revision")
    text = gettext("%(actor)s requested changes to revision %(revision)s; the run goes back to step %(step)s")
    return text % {"actor": actor, "revision": revision or 1, "step": step or "—"}


_OUTCOMES = {
    "approve": _("approved automatically"),
    "reject": _("rejected automatically"),
    "fail": _("the run failed"),
}


def _expired(actor: str, data: _Data) -> str:
    due = local_time(data.get("expires_at"))
    outcome = _OUTCOMES.get(str(data.peek("on_timeout")))
    if outcome is None:
        return gettext("The deadline of %(time)s passed") % {"time": due}
    data.get("on_timeout")
    return gettext("The deadline of %(time)s passed: %(outcome)s") % {"time": due, "outcome": outcome}


def _escalated(actor: str, data: _Data) -> str:
    data.get("on_timeout")  # "escalate": the sentence says it
    return gettext("The deadline of %(time)s passed: escalated to %(group)s") % {
        "time": local_time(data.get("expires_at")),
        "group": data.get("to_group"),
    }


def _resumed(actor: str, data: _Data) -> str:
    return gettext("Run resumed after step %(step)s") % {"step": data.get("after")}


def _run_completed(actor: str, data: _Data) -> str:
    return gettext("Run completed")


def _run_failed(actor: str, data: _Data) -> str:
    step, error = data.get("step"), data.get("error")
    if not error:
        return gettext("Run failed at step %(step)s") % {"step": step}
    return gettext("Run failed at step %(step)s: %(error)s") % {"step": step, "error": error}


def _run_cancelled(actor: str, data: _Data) -> str:
    count = len(data.peek("checkpoints") or [])  # their ids stay in the details
    if not count:
        return gettext("Run cancelled by %(actor)s") % {"actor": actor}
    text = ngettext(
        "Run cancelled by %(actor)s, with its pending review",
        "Run cancelled by %(actor)s, with its %(count)d pending reviews",
        count,
    )
    return text % {"actor": actor, "count": count}


def _run_retried(actor: str, data: _Data) -> str:
    step = data.get("from")
    reopened = data.get("review_reopened")
    if reopened:
        text = gettext("Retried by %(actor)s: the review of step %(step)s is open again") % {
            "actor": actor,
            "step": reopened,
        }
    else:
        text = gettext("Retried by %(actor)s from step %(step)s") % {"actor": actor, "step": step or "—"}
    error = data.get("previous_error")
    if error:
        text += " " + gettext("(it had failed: %(error)s)") % {"error": error}
    return text


def _run_recovered(actor: str, data: _Data) -> str:
    after = data.get("after")
    owner = data.get("lease_owner") or "?"
    if not after:
        return gettext("Run recovered after its worker %(worker)s stopped; it starts again from the beginning") % {
            "worker": owner
        }
    return gettext("Run recovered after its worker %(worker)s stopped; it continues after step %(step)s") % {
        "worker": owner,
        "step": after,
    }


def _approvals_voided(actor: str, data: _Data) -> str:
    names, keys = data.get("voided") or [], data.get("changed") or []
    text = ngettext(
        "The approval of %(names)s no longer counts: %(keys)s changed after it",
        "The approvals of %(names)s no longer count: %(keys)s changed after them",
        len(names),
    )
    return text % {"names": _names(names), "keys": _names(keys)}


def _run_forked(actor: str, data: _Data) -> str:
    edited = data.get("edited") or []
    if edited:
        return gettext("Re-run by %(actor)s from step %(step)s as a new run, with edits to %(keys)s") % {
            "actor": actor,
            "step": data.get("step"),
            "keys": _names(edited),
        }
    return gettext("Re-run by %(actor)s from step %(step)s as a new run") % {"actor": actor, "step": data.get("step")}


def _purged(actor: str, data: _Data) -> str:
    if data.get("why") == "erasure":
        return gettext("Data of the run erased by %(actor)s; who decided what and when is kept") % {"actor": actor}
    return gettext("Data of the run purged after its retention period; who decided what and when is kept")


#: The sentence of each audit action.
TELLERS: dict[str, Teller] = {
    AuditAction.RUN_STARTED: _run_started,
    AuditAction.STEP_COMPLETED: _step_completed,
    AuditAction.PAUSED: _paused,
    AuditAction.CLAIMED: _claimed,
    AuditAction.RELEASED: _released,
    AuditAction.REASSIGNED: _reassigned,
    AuditAction.EDITED: _edited,
    AuditAction.APPROVED: _approved,
    AuditAction.REJECTED: _rejected,
    AuditAction.EXPIRED: _expired,
    AuditAction.ESCALATED: _escalated,
    AuditAction.RESUMED: _resumed,
    AuditAction.RUN_COMPLETED: _run_completed,
    AuditAction.RUN_FAILED: _run_failed,
    AuditAction.RUN_CANCELLED: _run_cancelled,
    AuditAction.RUN_RETRIED: _run_retried,
    AuditAction.RUN_RECOVERED: _run_recovered,
    AuditAction.APPROVALS_VOIDED: _approvals_voided,
    AuditAction.RUN_FORKED: _run_forked,
    AuditAction.CHANGES_REQUESTED: _changes_requested,
    AuditAction.PURGED: _purged,
}


def _unknown(event: AuditEvent, actor: str) -> str:
    label = event.get_action_display()
    return gettext("%(action)s by %(actor)s") % {"action": label, "actor": actor} if event.actor_id else str(label)


def tell(event: AuditEvent, *, full: bool) -> Told:
    """The sentence of ``event``; failure messages in full only if ``full``
    (pass ``permissions.can_see_failure_details(user)``)."""
    user = event.actor if event.actor_id else None
    data = _Data(redacted(event.data or {}, full=full), str(user.get_username()) if user is not None else "")
    actor = actor_name(user)
    teller = TELLERS.get(event.action)
    sentence = teller(actor, data) if teller is not None else _unknown(event, actor)
    changes = dict(data.peek("changes") or {}) if event.action == AuditAction.EDITED else {}
    return Told(sentence=sentence, changes=changes, rest=data.rest())
