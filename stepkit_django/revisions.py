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
review). ``Review(max_revisions=N)`` caps the requests on one step of a run.

The decision key is reserved: a run's input holding it is refused when the run is
started, and a step whose output sets it (to anything but the value it was given)
fails the run; both raise :class:`~stepkit_django.exceptions.DecisionKeyCollision`
naming the key, rather than one value silently overwriting the other.

This module holds the rules; it imports nothing of the review services, the runner or
the pausing code, which all call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.utils.translation import gettext

from .describe import _step_at
from .engine import Pipeline
from .engine.executor import display_path, iter_positions, resume_before
from .exceptions import DecisionKeyCollision, InvalidDecision, InvalidOverride, PipelineNotFound, ReviewConflict
from .models import Checkpoint, PipelineRun
from .registry import get_registration
from .review_spec import Review
from .status import CheckpointStatus

__all__ = [
    "DEFAULT_DECISION_KEY",
    "DEFAULT_MAX_REVISIONS",
    "check_input",
    "check_request",
    "check_step_output",
    "decision",
    "decision_key_of",
    "decision_keys",
    "history",
    "previous_revision",
    "refuse_edit",
    "rerun_fields",
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
    """Raise :class:`InvalidOverride` when ``override_data`` sets the key the decisions are recorded under:
    the steps after a decision must read who decided, not what an edit says."""
    key = decision_key_of(checkpoint)
    if isinstance(override_data, Mapping) and key in override_data:
        message = gettext("This value records the reviewers' decisions; it cannot be edited.")
        raise InvalidOverride({key: [message]})


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


def history(checkpoint: Checkpoint) -> list[Checkpoint]:
    """The earlier revisions of ``checkpoint``'s step, oldest first (each with its reviewer's comment)."""
    chain: list[Checkpoint] = []
    current = checkpoint
    while current.revision_of_id is not None:
        previous = Checkpoint.objects.select_related("decided_by").filter(pk=current.revision_of_id).first()
        if previous is None:
            break
        chain.append(previous)
        current = previous
    return chain[::-1]


@lru_cache(maxsize=256)
def decision_keys(pipeline: Pipeline) -> frozenset[str]:
    """The decision keys of the reviews declared in ``pipeline`` (nested pipelines included)."""
    found: set[str] = set()
    stack = [pipeline]
    while stack:
        for step in stack.pop().steps:
            spec = step.options.extra.get("review")
            if isinstance(spec, Review):
                found.add(spec.decision_key)
            stack.extend(sub for _index, _segment, sub in step.children())
    return frozenset(found)


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
