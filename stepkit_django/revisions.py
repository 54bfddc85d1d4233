"""The revision loop: a reviewer requests changes, the run goes back and the step redrafts with the notes.

:func:`stepkit_django.review.request_changes` (the service, next to the other decisions
because it shares their checks) ends a pending checkpoint as ``changes_requested`` and
queues its run again from the reviewed step, or from an earlier step of the same
pipeline level (``to_step``). The steps that run again start from the context the
reviewer saw (with their edits, so a step can improve its own previous output), plus
the decision under ``Review(decision_key=...)`` (``"review"`` by default)::

    {"outcome": "changes_requested", "comment": "Shorter, please", "by": "ann",
     "at": "2026-12-01T10:00:00+00:00", "revision": 1}

An approval gives the steps after it the same details (``"outcome": "approved"``).
When the reviewed step completes again, the run pauses with a new checkpoint that
links to the one before (``revision_of``) and counts its ``revision`` (1 for the first
review). ``Review(max_revisions=N)`` caps the requests on one step of a run. When a
manager had reassigned the checkpoint sent back, the new revision keeps those assignees
(:func:`kept_assignment`) rather than the ones the ``Review`` declares.

:func:`history` lists the earlier revisions a user may see, each with the changes from the
data it was sent back with to the data of the revision that answered it (:func:`changes_between`);
the admin's review page and the API show that one list.

The decision key is reserved: a run's input holding it is refused when the run is
started, and a step whose output sets it (to anything but the value it was given)
fails the run; both raise :class:`~stepkit_django.exceptions.DecisionKeyCollision`
naming the key, rather than one value silently overwriting the other. No reviewer's
edit may set it, nor the decision key or the choice key of any other review of the
pipeline (:func:`refuse_edit`): the steps read there what the reviewers decided.

This module holds the rules; it imports nothing of the review services, the runner or
the pausing code, which all call it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from django.contrib.auth.models import Group
from django.utils.translation import gettext

from .describe import _step_at
from .engine import Pipeline
from .engine.executor import display_path, iter_positions, resume_before
from .exceptions import DecisionKeyCollision, InvalidDecision, InvalidOverride, PipelineNotFound, ReviewConflict
from .models import AuditEvent, Checkpoint, PipelineRun
from .registry import get_registration
from .review_spec import Review
from .status import AuditAction, CheckpointStatus

__all__ = [
    "DEFAULT_DECISION_KEY",
    "DEFAULT_MAX_REVISIONS",
    "KeptAssignment",
    "Revision",
    "changes_between",
    "check_input",
    "check_request",
    "check_step_output",
    "decision",
    "decision_key_of",
    "decision_keys",
    "history",
    "kept_assignment",
    "previous_revision",
    "refuse_edit",
    "rerun_fields",
    "reserved_keys",
    "revisions_left",
    "steps_to_go_back_to",
]

#: Where the steps after a decision read it, unless ``Review(decision_key=...)`` says otherwise.
DEFAULT_DECISION_KEY = "review"
#: How many times changes may be requested on one step of a run, unless ``Review(max_revisions=...)`` says.
DEFAULT_MAX_REVISIONS = 3

_MISSING = object()


def decision_key_of(checkpoint: Checkpoint) -> str:
    """The context key under which the steps after ``checkpoint``'s decision read it."""
    return str(checkpoint.review.get("decision_key") or DEFAULT_DECISION_KEY)


def refuse_edit(checkpoint: Checkpoint, override_data: object) -> None:
    """Raise :class:`InvalidOverride` when ``override_data`` sets a key the reviewers' decisions are recorded
    under: the decision key of any review of the pipeline, or the choice key of any review with choices
    (:func:`reserved_keys`), this checkpoint's own included. Editable keys or not, the steps after a
    decision must read who decided, not what an edit says."""
    if not isinstance(override_data, Mapping):
        return
    reserved = _reserved_for(checkpoint)
    errors: dict[str, list[str]] = {}
    for key in sorted(str(key) for key in override_data if key in reserved):
        if reserved[key] == "choice":
            message = gettext("This value is a reviewer's choice: it is chosen when approving; it cannot be edited.")
        else:
            message = gettext("This value records the reviewers' decisions; it cannot be edited.")
        errors[key] = [message]
    if errors:
        raise InvalidOverride(errors)


def _reserved_for(checkpoint: Checkpoint) -> dict[str, str]:
    """The reserved keys of ``checkpoint``'s pipeline, with those its own review settings name (kept even
    when the pipeline is no longer registered, or was registered again with other reviews)."""
    try:
        reserved = dict(reserved_keys(get_registration(checkpoint.pipeline_name).pipeline))
    except PipelineNotFound:
        reserved = {}
    reserved.setdefault(decision_key_of(checkpoint), "decision")
    own_choice = checkpoint.review.get("choice_key") if checkpoint.review.get("choices") else None
    if own_choice:
        reserved[str(own_choice)] = "choice"
    return reserved


def decision(checkpoint: Checkpoint, outcome: str, by: Any, comment: str, at: datetime) -> dict[str, Any]:
    """The details of a decision as the next steps see them (JSON: the run stores its context)."""
    return {
        "outcome": str(outcome),
        "comment": comment or "",
        "by": str(by.get_username()) if by is not None else None,
        "at": at.isoformat(),
        "revision": checkpoint.revision,
    }


def with_decision(
    checkpoint: Checkpoint, override: Mapping[str, Any], outcome: str, by: Any, comment: str, at: datetime
) -> dict[str, Any]:
    """``override`` (the edits the run resumes with) with the decision's details under the decision key."""
    return {**override, decision_key_of(checkpoint): decision(checkpoint, outcome, by, comment, at)}


def check_request(checkpoint: Checkpoint, comment: str | None) -> str:
    """The comment of a request for changes on ``checkpoint``, stripped; refused without one, or past the cap."""
    comment = (comment or "").strip()
    if not comment:
        raise InvalidDecision({"comment": [gettext("Say what should change: the comment is required.")]})
    if not revisions_left(checkpoint):
        raise ReviewConflict(
            gettext(
                "Changes were requested %(count)s times on this step already, the most its review allows; "
                "approve or reject this revision."
            )
            % {"count": checkpoint.revision - 1}
        )
    return comment


def _allowed(pipeline: Pipeline, reviewed: tuple[int, ...]) -> list[str]:
    """The steps a run may go back to from the step at ``reviewed``: it, and the earlier ones of its level
    except those after an earlier step that has a review of its own (they would run again with this
    reviewer's data, unseen by that review; going back to that step or before it is fine: it pauses again)."""
    level = sorted(
        (
            (pos[-1], path, pos)
            for path, pos in iter_positions(pipeline)
            if len(pos) == len(reviewed) and pos[:-1] == reviewed[:-1] and pos[-1] <= reviewed[-1]
        ),
    )
    earlier_reviews = [
        index
        for index, _path, pos in level
        if pos != reviewed and isinstance(_step_at(pipeline, pos).options.extra.get("review"), Review)
    ]
    barrier = max(earlier_reviews, default=None)
    return [path for index, path, pos in level if barrier is None or index <= barrier or pos == reviewed]


def rerun_fields(checkpoint: Checkpoint, fields: Mapping[str, Any], to_step: str | None) -> tuple[str, dict[str, Any]]:
    """``(step, run fields)`` that make the run resumed by ``fields`` (after the reviewed step) run ``to_step``
    again, and every step after it; ``to_step`` defaults to the reviewed step.

    Raises :class:`InvalidDecision` (``to_step``) for a step that is not in the pipeline, comes after the
    reviewed one, is at another level (in another branch or nested pipeline), or comes before an earlier
    step that has a review of its own (the steps between would run again unseen by that review).
    """
    pipeline = get_registration(checkpoint.pipeline_name).pipeline
    reviewed, reviewed_path = tuple(fields["position"]), str(fields["current_step"])
    step = reviewed_path if to_step in (None, "") else str(to_step)
    target = dict(iter_positions(pipeline)).get(step)
    allowed_steps = _allowed(pipeline, reviewed)
    allowed = ", ".join(allowed_steps)
    values = {"step": step, "reviewed": reviewed_path, "allowed": allowed}
    if target is None:
        message = gettext("%(step)s is not a step of this pipeline; the run can go back to: %(allowed)s.")
    elif len(target) != len(reviewed) or target[:-1] != reviewed[:-1]:
        message = gettext(
            "%(step)s is in another part of the pipeline than %(reviewed)s; the run can go back to: %(allowed)s."
        )
    elif target[-1] > reviewed[-1]:
        message = gettext("%(step)s comes after %(reviewed)s; the run can go back to: %(allowed)s.")
    elif step not in allowed_steps:
        message = gettext(
            "%(step)s comes before a step with a review of its own, which would not see this run again; "
            "the run can go back to: %(allowed)s."
        )
    else:
        position = resume_before(target)
        # Sent back to the first step of its level, the run names that step; else the one it resumes after.
        current = step if position[-1] < 0 else display_path(pipeline, position)
        return step, {**fields, "position": list(position), "current_step": current}
    raise InvalidDecision({"to_step": [message % values]})


def steps_to_go_back_to(checkpoint: Checkpoint) -> list[str]:
    """The steps a request for changes on ``checkpoint`` may send its run back to, in pipeline order."""
    try:
        pipeline = get_registration(checkpoint.pipeline_name).pipeline
    except PipelineNotFound:
        return [checkpoint.step]
    known = dict(iter_positions(pipeline))
    reviewed = known.get(checkpoint.step)
    return _allowed(pipeline, reviewed) if reviewed is not None else [checkpoint.step]


def revisions_left(checkpoint: Checkpoint) -> int:
    """How many more times changes may be requested on ``checkpoint``'s step (0: only approve or reject)."""
    cap = int(checkpoint.review.get("max_revisions", DEFAULT_MAX_REVISIONS))
    return max(cap - checkpoint.revision + 1, 0)


def previous_revision(run: PipelineRun, step: str) -> Checkpoint | None:
    """The checkpoint of ``step`` in ``run`` whose reviewer requested the changes a new one answers, if any."""
    last = Checkpoint.objects.filter(run=run, step=step).order_by("-created_at", "-pk").first()
    return last if last is not None and last.status == CheckpointStatus.CHANGES_REQUESTED else None


@dataclass(frozen=True)
class Revision:
    """An earlier revision in a checkpoint's history, and what changed after it."""

    #: The earlier checkpoint (its ``comment``: the changes its reviewer asked for).
    checkpoint: Checkpoint
    #: The revision that answered it (the next one of the chain).
    next_revision: int
    #: ``{key: {"before": ..., "after": ...}}``: see :func:`changes_between`.
    changes: dict[str, dict[str, Any]]


def changes_between(earlier: Checkpoint, later: Checkpoint) -> dict[str, dict[str, Any]]:
    """What changed from the data ``earlier`` was sent back with to the data ``later`` (its next revision)
    paused with, key by key, keys sorted: ``{key: {"before": value, "after": value}}``.

    ``before`` is from ``earlier``'s effective data (its context with its reviewer's edits: what the
    steps ran again with), ``after`` from ``later``'s context (before any edit of its own). A key absent
    on one side counts as ``None`` (so a key is listed when the two values differ, and a key that is
    absent on one side and ``None`` on the other is not). The key the request itself wrote, ``earlier``'s
    decision key, is left out: it always changes, and the history shows the reviewer's comment.
    """
    before, after = earlier.effective_context, later.context
    skipped = decision_key_of(earlier)
    keys = sorted((set(before) | set(after)) - {skipped}, key=str)
    return {
        key: {"before": before.get(key), "after": after.get(key)} for key in keys if before.get(key) != after.get(key)
    }


def history(checkpoint: Checkpoint, user: Any) -> list[Revision]:
    """The earlier revisions of ``checkpoint``'s step that ``user`` may see, oldest first, each with the
    changes from its data to the next revision's.

    ``user`` sees a revision when they could open it on its own (``Checkpoint.objects.for_user``: the
    queue's rule, assignments and review permission included, or the run's starter). Going back from
    ``checkpoint``, the list stops at the first revision ``user`` may not see, so that no listed change
    compares with data they may not read. One query, whatever the number of revisions.
    """
    if checkpoint.revision_of_id is None:
        return []
    earlier = {
        cp.pk: cp
        for cp in Checkpoint.objects.for_user(user)
        .filter(run_id=checkpoint.run_id, step=checkpoint.step, revision__lt=checkpoint.revision)
        .select_related("decided_by")
    }
    chain: list[Revision] = []
    current = checkpoint
    while current.revision_of_id in earlier:
        previous = earlier.pop(current.revision_of_id)  # popped: a corrupt loop of links cannot repeat
        chain.append(Revision(previous, current.revision, changes_between(previous, current)))
        current = previous
    return chain[::-1]


@dataclass(frozen=True)
class KeptAssignment:
    """The assignees a new revision keeps from the revision before it, which a manager had reassigned."""

    users: list[Any]
    groups: list[Group]
    #: The users who reassigned the revision before, oldest first: they chose these reviewers, so they
    #: may not approve the new revision either.
    reassigners: list[Any]


def kept_assignment(previous: Checkpoint) -> KeptAssignment | None:
    """The assignees of ``previous`` when someone reassigned it (an ``reassigned`` event on it), for the
    revision that answers it; None when its assignees are the ones its ``Review`` declared.

    A request for changes sends the work back, not away: the people a manager chose keep it.
    """
    reassigners: list[Any] = []
    reassigned = False
    events = AuditEvent.objects.filter(checkpoint=previous, action=AuditAction.REASSIGNED).select_related("actor")
    for event in events.order_by("timestamp", "pk"):
        reassigned = True
        if event.actor is not None and event.actor not in reassigners:
            reassigners.append(event.actor)
    if not reassigned:
        return None
    return KeptAssignment(list(previous.assigned_users.all()), list(previous.assigned_groups.all()), reassigners)


def _reviews(pipeline: Pipeline) -> Iterator[Review]:
    """The reviews declared in ``pipeline``, nested pipelines included."""
    stack = [pipeline]
    while stack:
        for step in stack.pop().steps:
            spec = step.options.extra.get("review")
            if isinstance(spec, Review):
                yield spec
            stack.extend(sub for _index, _segment, sub in step.children())


@lru_cache(maxsize=256)
def decision_keys(pipeline: Pipeline) -> frozenset[str]:
    """The decision keys of the reviews declared in ``pipeline`` (nested pipelines included)."""
    return frozenset(spec.decision_key for spec in _reviews(pipeline))


@lru_cache(maxsize=256)
def reserved_keys(pipeline: Pipeline) -> Mapping[str, str]:
    """The context keys no reviewer may edit in ``pipeline``: each review's decision key (``"decision"``)
    and, for a review with choices, its choice key (``"choice"``)."""
    reserved: dict[str, str] = {}
    for spec in _reviews(pipeline):
        reserved[spec.decision_key] = "decision"
        if spec.choices:
            reserved.setdefault(spec.choice_key, "choice")
    return MappingProxyType(reserved)  # cached: shared by every caller


def check_input(pipeline: Pipeline, data: Mapping[str, Any]) -> None:
    """Refuse a run's input that holds a decision key of the pipeline's reviews (it would be overwritten)."""
    taken = sorted(key for key in decision_keys(pipeline) if key in data)
    if taken:
        message = gettext(
            "This key is where the steps read a reviewer's decision; give this value another name, "
            "or declare the review with another decision_key."
        )
        raise DecisionKeyCollision({key: [message] for key in taken})


def check_step_output(keys: frozenset[str], before: Mapping[str, Any], after: Mapping[str, Any], step: str) -> None:
    """Fail when step ``step`` set a decision key (``after`` holds another value than ``before``, its input)."""
    for key in keys:
        value = after.get(key, _MISSING)
        if value is _MISSING:
            continue
        old = before.get(key, _MISSING)
        if value is not old and value != old:
            message = gettext(
                "Step %(step)s returned the key %(key)s, where the steps read a reviewer's decision; "
                "rename its output, or declare the review with another decision_key."
            ) % {"step": step, "key": key}
            raise DecisionKeyCollision({key: [message]})
