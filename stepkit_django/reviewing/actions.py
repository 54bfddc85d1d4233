"""A posted review page: which button → which review service, and which message (the admin's and the inbox's).

:func:`handle_post` calls :mod:`stepkit_django.review` as the request's user and tells
the outcome with Django's messages framework; the surface only turns the
:class:`Outcome` into a response (the next item of its own pages, the page again).
Refusals never escape: the services' per-field errors go to the form's fields, the
others (conflicts, permissions) become a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest
from django.utils.translation import gettext

from .. import choices, review
from ..exceptions import InvalidAssignment, InvalidDecision, InvalidOverride, StepkitError
from ..models import Checkpoint
from .display import item_label
from .forms import ReassignForm, ReviewForm
from .navigation import approved_message, next_item, review_next

__all__ = ["Outcome", "claim_next", "following_item", "handle_post", "posted_choice"]


@dataclass(frozen=True)
class Outcome:
    """What a posted review page leads to.

    ``rerender``: show the page again with the forms' errors (no redirect). ``decided``: a
    decision was taken, go on to the next item. ``reassigned``: the checkpoint was
    reassigned (it may have left the user's queue). Else: back to the same page.
    """

    rerender: bool = False
    decided: Checkpoint | None = None
    reassigned: bool = False


STAY = Outcome()
RERENDER = Outcome(rerender=True)


def posted_choice(request: HttpRequest, checkpoint: Checkpoint) -> choices.Choice:
    """The choice the review page sent: the key of the button pressed, or the boxes ticked."""
    if checkpoint.review.get("multiple"):
        return request.POST.getlist("_choice")
    return request.POST.get("_choice") or None


def _say(request: HttpRequest, level: int, text: str) -> None:
    messages.add_message(request, level, text, fail_silently=True)


def handle_post(
    request: HttpRequest,
    checkpoint: Checkpoint,
    form: ReviewForm,
    reassign_form: ReassignForm,
    *,
    may_review: bool,
) -> Outcome:
    """Do what the posted review page asks of ``checkpoint`` through the review services.

    ``may_review``: whether the surface lets the user review at all (else a message, nothing done).
    """
    # A review with choices has one button per choice, each sending its key as _choice: that approves.
    action = request.POST.get("_action", "") or ("approve" if "_choice" in request.POST else "")
    if not may_review:
        _say(request, messages.ERROR, gettext("You may not review checkpoints."))
        return STAY
    user = request.user
    raw = request.POST.get("expected_version", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):  # the page's own field: a decision is about it
        _say(request, messages.ERROR, gettext("This page is out of date: reload it and try again."))
        return STAY
    version = int(raw)
    try:
        return _dispatch(request, checkpoint, form, reassign_form, action, user, version)
    except InvalidOverride as exc:
        form.add_override_errors(exc.errors)
        _say(request, messages.ERROR, gettext("The edits were refused; see the errors below."))
        return RERENDER
    except InvalidDecision as exc:
        form.add_decision_errors(exc.errors)
        _say(request, messages.ERROR, gettext("The decision was refused; see the errors below."))
        return RERENDER
    except InvalidAssignment as exc:
        reassign_form.add_assignment_errors(exc.errors)
        _say(request, messages.ERROR, gettext("The reassignment was refused; see the errors below."))
        return RERENDER
    except StepkitError as exc:  # a conflict, a permission refused: said on the page
        _say(request, messages.ERROR, str(exc))
    return STAY


def _dispatch(
    request: HttpRequest,
    checkpoint: Checkpoint,
    form: ReviewForm,
    reassign_form: ReassignForm,
    action: str,
    user: Any,
    version: int,
) -> Outcome:
    if action == "claim":
        review.claim(checkpoint, user, expected_version=version)
        _say(request, messages.SUCCESS, gettext("You claimed this checkpoint."))
        return STAY
    if action == "release":
        review.release(checkpoint, user, expected_version=version)
        _say(request, messages.SUCCESS, gettext("You released your claim."))
        return STAY
    if action == "reassign":
        review.check_pending(checkpoint, version)
        if not reassign_form.is_valid():
            _say(request, messages.ERROR, gettext("Please correct the errors below."))
            return RERENDER
        users, groups = reassign_form.cleaned_data["to_users"], reassign_form.cleaned_data["to_groups"]
        review.reassign(checkpoint, user, to_users=users, to_groups=groups, expected_version=version)
        names = [*users, *(group.name for group in groups)]
        _say(request, messages.SUCCESS, gettext("Reassigned to %(names)s.") % {"names": ", ".join(names)})
        return Outcome(reassigned=True)
    if action not in ("edit", "approve", "reject", "request_changes"):
        _say(request, messages.ERROR, gettext("Unknown action %(action)r.") % {"action": action})
        return STAY
    review.check_pending(checkpoint, version)
    if not form.is_valid():
        _say(request, messages.ERROR, gettext("Please correct the errors below."))
        return RERENDER
    comment = form.cleaned_data["comment"]
    # Only the keys whose value the reviewer changed: a page approved untouched records no edit.
    changes = form.changes()
    if action == "edit":
        if not changes:
            _say(request, messages.INFO, gettext("Nothing changed."))
            return STAY
        review.edit(checkpoint, user, changes, expected_version=version)
        _say(request, messages.SUCCESS, gettext("Saved edits to %(keys)s.") % {"keys": ", ".join(changes)})
        return STAY
    if action == "approve":
        choice = posted_choice(request, checkpoint)
        decided = review.approve(checkpoint, user, changes or None, comment, expected_version=version, choice=choice)
        decided = decided or checkpoint
        _say(request, messages.SUCCESS, approved_message(decided, item_label(decided)))
        return Outcome(decided=decided)
    if action == "request_changes":
        to_step = form.cleaned_data.get("to_step") or None
        decided = review.request_changes(
            checkpoint, user, comment, to_step=to_step, override_data=changes or None, expected_version=version
        )
        sent_back = gettext("Changes requested on “%(title)s”: the run goes back to step %(step)s.")
        _say(request, messages.SUCCESS, sent_back % {"title": item_label(decided), "step": to_step or decided.step})
        return Outcome(decided=decided)
    decided = review.reject(checkpoint, user, comment, expected_version=version)
    rejected = gettext("Rejected “%(title)s”: the run will not continue.")
    _say(request, messages.SUCCESS, rejected % {"title": item_label(decided)})
    return Outcome(decided=decided)


def following_item(request: HttpRequest, decided: Checkpoint) -> Checkpoint | None:
    """After a decision: the next item the reviewer can decide, or None, said with a message."""
    following = next_item(request.user, after=decided)
    if following is None:
        _say(request, messages.INFO, gettext("Nothing else is waiting for you."))
    return following


def claim_next(request: HttpRequest, **filters: Any) -> Checkpoint | None:
    """ "Review next": claim the oldest free item of the user's queue (narrowed by ``filters``), said with a message."""
    try:
        claimed = review_next(request.user, **filters)
    except StepkitError as exc:
        _say(request, messages.ERROR, str(exc))
        claimed = None
    if claimed is None:
        _say(request, messages.INFO, gettext("Nothing is waiting for you to review."))
        return None
    claimed_text = gettext("You claimed “%(title)s”: nobody else can decide it while you work on it.")
    _say(request, messages.SUCCESS, claimed_text % {"title": item_label(claimed)})
    return claimed
