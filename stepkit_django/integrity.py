"""Verifying the audit trail's hash chains (:mod:`stepkit_django.chain`): ``manage.py stepkit_verify``.

:func:`verify` walks each run's events in the order they were written (by id), recomputes each link
from the previous one and the event's kept fields, and compares it with the stored ``chain``; it checks
each event's data against its digest, that data redacted to what a purge keeps is followed by the
run's ``purged`` event (the purge is the one sanctioned writer), and that the run's ``audit_head`` is
the last event's link. What it finds is a :class:`Report` of :class:`Problem` sentences:

* a changed event breaks its own link (a kept field changed) or only its digest (a removed value);
* a removed event breaks the link of the event after it, and a removed last event the run's head;
* an event without a chain is a problem: migration 0017 chained every event written before it, so one
  was written around stepkit or had its chain removed;
* a run's trail must start with a chained ``run_started`` event (every run is started with one): a run
  without events, or whose first events were removed or replaced, is a problem;
* data that is not a JSON object, or that holds a ``purged`` key without being in a purge's redacted
  form while the chain alone covers it (no digest), is reported as changed data.

It reads runs in batches by key and streams their events, so it runs on millions of events in a
bounded amount of memory.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from django.utils.translation import gettext, ngettext

from . import chain
from .models import AuditEvent, PipelineRun
from .redaction import is_redacted
from .status import AuditAction

__all__ = ["BATCH_SIZE", "PROBLEMS", "Problem", "Report", "verify"]

#: How many runs :func:`verify` reads at a time (their events are streamed in chunks of the same size).
BATCH_SIZE = 500

#: The kinds of :class:`Problem`, and what each means.
PROBLEMS = {
    "changed": "an event's link does not verify: a field the chain covers changed, or an event before it was removed",
    "data_changed": "an event's data does not match its digest: a value was changed or removed",
    "redacted": "an event's data was redacted, and no purge of the run follows it",
    "unchained": "an event has no chain: it was written around stepkit, or its chain was removed",
    "unstarted": "the run's trail does not start with a chained run_started event: its events were removed",
    "unreadable": "an event cannot be verified: a field holds a value stepkit never writes (a NULL time...)",
    "truncated": "the run's head is not its last event's link: events at the end were removed, or the head changed",
    "key": "no event of the run verifies with SECRET_KEY, SECRET_KEY_FALLBACKS or STEPKIT['AUDIT_VERIFY_SECRETS']",
}

_FIELDS = (
    "pk",
    "run_id",
    "checkpoint_id",
    "pipeline_name",
    "action",
    "actor_id",
    "timestamp",
    "note",
    "data",
    "chain",
    "data_digest",
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something :func:`verify` found: the run, the event (None: the run's head), a kind of
    :data:`PROBLEMS` and a sentence for people."""

    run: Any
    event: int | None
    kind: str
    message: str


@dataclasses.dataclass
class Report:
    """What :func:`verify` checked and found; ``ok`` when it found nothing wrong. ``keys`` counts the events
    whose link verified with each key, in the order they are tried, by the name of the setting that holds
    its secret (:func:`stepkit_django.chain.named_verifying_keys`: ``"SECRET_KEY"``,
    ``"AUDIT_VERIFY_SECRETS[0]"``...), never the key itself; a count of 0: the key verified no event."""

    runs: int = 0
    events: int = 0
    chained: int = 0
    unchained: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    keys: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One sentence: what was verified and how many problems were found."""
        checked = gettext(
            "Verified %(runs)s run(s) and %(events)s audit event(s): %(chained)s chained, "
            "%(unchained)s without a chain."
        ) % {"runs": self.runs, "events": self.events, "chained": self.chained, "unchained": self.unchained}
        if self.ok:
            return checked + " " + gettext("No problem found.")
        runs = len({problem.run for problem in self.problems})
        found = ngettext(
            "%(count)s problem found in %(runs)s run(s).", "%(count)s problems found in %(runs)s run(s).", runs
        )
        return checked + " " + found % {"count": len(self.problems), "runs": runs}

    def keys_summary(self) -> str:
        """One sentence: how many events verified with each key, named by its setting."""
        counts = ", ".join(f"{name}: {count}" for name, count in self.keys.items())
        return gettext("Events verified with each key: %(keys)s.") % {"keys": counts}


def verify(run: PipelineRun | Any = None, *, batch_size: int = BATCH_SIZE) -> Report:
    """Verify the chains of every run's trail, or of ``run`` (an instance or its key) only."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size!r}")
    report = Report()
    keys = chain.named_verifying_keys()
    report.keys = dict.fromkeys((name for name, _ in keys), 0)
    for heads in _runs(run, batch_size):
        ids = list(heads)
        events = AuditEvent.objects.filter(run__in=ids).order_by("run_id", "pk").values_list(*_FIELDS)
        seen = set()
        for run_id, rows in groupby(events.iterator(chunk_size=batch_size), key=lambda row: row[1]):
            seen.add(run_id)
            _verify_run(run_id, heads[run_id], rows, keys, report)
        for run_id in ids:
            report.runs += 1
            if run_id not in seen:
                report.problems.append(
                    Problem(
                        run_id,
                        None,
                        "unstarted",
                        gettext("The run has no audit event: its trail, run_started included, was removed."),
                    )
                )
    return report


def _runs(run: Any, batch_size: int) -> Iterator[dict[Any, bytes | None]]:
    """The runs to verify with their heads, a batch at a time, by key."""
    runs = PipelineRun.objects.order_by("pk")
    if run is not None:
        runs = runs.filter(pk=getattr(run, "pk", run))
    last = None
    while True:
        page = runs if last is None else runs.filter(pk__gt=last)
        batch = list(page.values_list("pk", "audit_head")[:batch_size])
        if not batch:
            return
        yield {pk: bytes(head) if head is not None else None for pk, head in batch}
        last = batch[-1][0]


def _when(at: datetime) -> str:
    if not isinstance(at, datetime):  # a value stepkit never writes
        return str(at)
    return (at.astimezone(UTC) if at.tzinfo else at).strftime("%Y-%m-%d %H:%M:%S UTC")


def _event(pk: int, action: str, at: datetime) -> str:
    return gettext("Event %(id)s (%(action)s at %(time)s)") % {"id": pk, "action": action, "time": _when(at)}


def _verify_run(
    run_id: Any, head: bytes | None, rows: Iterator[tuple[Any, ...]], keys: list[tuple[str, bytes]], report: Report
) -> None:
    """Walk one run's events (in id order) and add what is wrong to ``report``."""
    previous: bytes | None = None
    chained = verified = 0
    started: bool | None = None  # whether the first event is a chained run_started
    found: list[Problem] = []
    redacted: list[tuple[int, str, datetime]] = []  # waiting for a purge after them
    for pk, _, checkpoint, pipeline_name, action, actor, at, note, data, stored, data_digest in rows:
        report.events += 1
        if started is None:
            started = stored is not None and action == AuditAction.RUN_STARTED
        if stored is None:
            report.unchained += 1
            found.append(
                Problem(
                    run_id,
                    pk,
                    "unchained",
                    gettext("%(event)s has no chain: it was written around stepkit, or its chain was removed.")
                    % {"event": _event(pk, action, at)},
                )
            )
            continue
        chained += 1
        stored = bytes(stored)
        try:
            problem = _verify_event(
                run_id,
                pk,
                checkpoint,
                pipeline_name,
                action,
                actor,
                at,
                note,
                data,
                stored,
                data_digest,
                previous,
                keys,
                redacted,
                report.keys,
            )
        except (TypeError, ValueError, UnicodeError, AttributeError):  # a NULL time, NaN, a lone surrogate...
            problem = Problem(
                run_id,
                pk,
                "unreadable",
                gettext("Event %(id)s holds values stepkit never writes (a missing time, NaN, invalid text...).")
                % {"id": pk},
            )
        previous = stored  # the next link is checked against what is stored: one change, one problem
        if problem is None:
            verified += 1
        elif problem.kind != "data_changed":
            found.append(problem)
            continue
        else:
            verified += 1
            found.append(problem)
        if action == AuditAction.PURGED:
            redacted = []  # a purge (chained: sanctioned) redacted what came before it
    _finish(run_id, head, previous, chained, verified, started, found, redacted, report)


def _verify_event(
    run_id: Any,
    pk: int,
    checkpoint: Any,
    pipeline_name: str,
    action: str,
    actor: Any,
    at: datetime,
    note: str,
    data: Any,
    stored: bytes,
    data_digest: bytes | None,
    previous: bytes | None,
    keys: list[tuple[str, bytes]],
    redacted: list[tuple[int, str, datetime]],
    used: dict[str, int],
) -> Problem | None:
    """What is wrong with one chained event (its data redacted: added to ``redacted``), if anything; the name
    of the key its link verifies with is counted in ``used``."""
    if not isinstance(at, datetime) or not isinstance(note, str) or not isinstance(pipeline_name, str):
        raise TypeError("not a value stepkit writes")
    whole = isinstance(data, dict)
    data = data if whole else {}
    digest = bytes(data_digest) if data_digest is not None else b""
    text = chain.message(
        run=run_id,
        checkpoint=checkpoint,
        pipeline_name=pipeline_name,
        action=action,
        actor=actor,
        timestamp=at,
        note=note,
        data=data,
        data_digest=digest,
    )
    found = next(((n, k) for n, k in keys if hmac.compare_digest(chain.link(k, previous, text), stored)), None)
    if found is None:
        return Problem(
            run_id,
            pk,
            "changed",
            gettext(
                "%(event)s does not match its chain: its action, actor, time, note, checkpoint or kept "
                "data changed, or the event before it was removed."
            )
            % {"event": _event(pk, action, at)},
        )
    name, key = found
    used[name] += 1
    if whole and is_redacted(action, data):
        redacted.append((pk, action, at))
    elif (
        not whole
        or (not digest and "purged" in data)  # the link covers all but the value of `purged`
        or (digest and not hmac.compare_digest(chain.digest(key, data), digest))  # empty: the link covers all
    ):
        return Problem(
            run_id,
            pk,
            "data_changed",
            gettext("%(event)s: its data is not the data it was written with.") % {"event": _event(pk, action, at)},
        )
    return None


def _finish(
    run_id: Any,
    head: bytes | None,
    previous: bytes | None,
    chained: int,
    verified: int,
    started: bool | None,
    found: list[Problem],
    redacted: list[tuple[int, str, datetime]],
    report: Report,
) -> None:
    """Add the run's problems to ``report``, with those of the run as a whole."""
    if chained and not verified:
        found = [p for p in found if p.kind != "changed"]
        found.insert(
            0,
            Problem(
                run_id,
                None,
                "key",
                gettext(
                    "None of the run's %(count)s chained events verifies with SECRET_KEY, SECRET_KEY_FALLBACKS or "
                    "STEPKIT['AUDIT_VERIFY_SECRETS']: the key changed without its old value in either of the "
                    "last two, or the whole trail was rewritten."
                )
                % {"count": chained},
            ),
        )
    for pk, action, at in redacted:
        found.append(
            Problem(
                run_id,
                pk,
                "redacted",
                gettext("%(event)s: its data was redacted, but no purge of the run follows it.")
                % {"event": _event(pk, action, at)},
            )
        )
    if not started:
        found.insert(
            0,
            Problem(
                run_id,
                None,
                "unstarted",
                gettext(
                    "The run's trail does not start with a chained run_started event: its first events were "
                    "removed or replaced."
                ),
            ),
        )
    if chained and head != previous:
        found.append(
            Problem(
                run_id,
                None,
                "truncated",
                gettext(
                    "The run's head does not match its last event: events at the end of its trail were removed, "
                    "or the head was changed."
                ),
            )
        )
    elif not chained and head is not None:
        found.append(
            Problem(
                run_id,
                None,
                "truncated",
                gettext("The run records a chain, but none of its events has one: its chained events were removed."),
            )
        )
    report.chained += chained
    report.problems += found
