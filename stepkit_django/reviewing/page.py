"""The review page's form and context, once for every surface that shows one (the admin, the inbox).

A surface fetches the checkpoint through its own queryset (the user's queue), builds the
form with :func:`review_form`, and renders :func:`page_context` with what only it adds
(the admin's breadcrumbs, the inbox's base template). ``url_for`` turns a checkpoint into
that surface's review page, so that the revisions and "Next item" stay on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.text import get_text_list
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import choices, permissions, quorum, revisions
from ..describe import remaining_steps
from ..models import Checkpoint
from ..registry import registered
from ..sentences import actor_name, local_time
from .display import data_rows, revision_changes
from .forms import ReassignForm, ReviewForm
from .navigation import next_item
from .trail import trail_rows

__all__ = [
    "PAGE_RELATED",
    "heading",
    "page_context",
    "pipeline_steps",
    "quorum_context",
    "review_form",
    "review_forms",
    "revision_rows",
]

#: The relations the review page reads: fetch the checkpoint with ``select_related(*PAGE_RELATED)``.
PAGE_RELATED = ("run", "claimed_by", "decided_by", "run__started_by")

#: A surface's review page of a checkpoint.
UrlFor = Callable[[Checkpoint], str]


def review_form(checkpoint: Checkpoint, data: Any = None) -> ReviewForm:
    """The edits and decision form of ``checkpoint``, bound to ``data`` when posted."""
    form = ReviewForm(
        data,
        editable=checkpoint.editable_keys,
        schema=checkpoint.review.get("schema"),
        current=checkpoint.effective_context,
        to_steps=revisions.steps_to_go_back_to(checkpoint) if checkpoint.is_pending else None,
        initial={"expected_version": checkpoint.version, "comment": ""},
    )
    if checkpoint.review.get("require_reject_reason"):
        form.fields["comment"].help_text = _("To reject, say why: the reason is required.")
    elif checkpoint.is_pending and not revisions.revisions_left(checkpoint):
        form.fields["comment"].help_text = _("Optional: the person who started the run and the trail show it.")
    return form


def review_forms(checkpoint: Checkpoint, posted: Any) -> tuple[ReviewForm, ReassignForm]:
    """The review form and the reassignment form; the one the POST ``posted`` is for is bound to it."""
    reassigning = posted is not None and posted.get("_action") == "reassign"
    form = review_form(checkpoint, data=None if reassigning else posted)
    return form, ReassignForm(posted if reassigning else None, prefix="reassign")


def heading(checkpoint: Checkpoint) -> str:
    """The checkpoint's title when it has one, else its pipeline and step."""
    title = str(getattr(checkpoint, "title", "") or "").strip()
    if title:
        return title
    return gettext("Review: %(pipeline)s / %(step)s") % {"pipeline": checkpoint.pipeline_name, "step": checkpoint.step}


def quorum_context(checkpoint: Checkpoint, user: Any) -> dict[str, Any]:
    """A per-group quorum's progress, and why ``user`` cannot add an approval now (their groups' counts
    are met, or they are in none of the groups), for the page to say so instead of offering Approve."""
    if not checkpoint.approvals_by_group:
        return {"quorum_progress": [], "quorum_refusal": None}
    groups = [approval.group for approval in checkpoint.approvals.all()]
    already = any(approval.user_id == user.pk for approval in checkpoint.approvals.all())
    refusal = quorum.refusal(checkpoint.review, user, groups) if checkpoint.is_pending and not already else None
    return {"quorum_progress": quorum.progress(checkpoint.review, groups), "quorum_refusal": refusal}


def revision_rows(checkpoint: Checkpoint, user: Any, url_for: UrlFor) -> list[dict[str, Any]]:
    """The earlier revisions ``user`` may see, each with what the next revision changed."""
    schema = checkpoint.review.get("schema")
    rows = []
    for earlier in revisions.history(checkpoint, user):
        cp = earlier.checkpoint
        changes = revision_changes(earlier.changes, schema)
        rows.append(
            {
                "revision": cp.revision,
                "next_revision": earlier.next_revision,
                "comment": cp.comment,
                "by": actor_name(cp.decided_by) if cp.decided_by_id else "",
                "at": local_time(cp.decided_at) if cp.decided_at else "",
                "url": url_for(cp),
                "changes": changes,
                "changed": get_text_list([row.label for row in changes], gettext("and")),
            }
        )
    return rows


def pipeline_steps(checkpoint: Checkpoint) -> list[dict[str, str]]:
    """The pipeline's steps, each done, paused (reviewed) here, or to run after the review."""
    pipeline = registered().get(checkpoint.pipeline_name)
    if pipeline is None or not checkpoint.position:
        return []
    names = pipeline.describe()
    here = checkpoint.position[0]
    remaining = set(remaining_steps(checkpoint.pipeline_name, checkpoint.position))
    rows = []
    pending = checkpoint.is_pending
    for index, name in enumerate(names):
        if index == here:
            state = "paused"
            label = (gettext("paused here (%(step)s)") if pending else gettext("reviewed here (%(step)s)")) % {
                "step": checkpoint.step
            }
        elif name in remaining:
            state = "remaining"
            label = gettext("to run after approval") if pending else gettext("after this review")
        else:
            state, label = "done", gettext("done")
        rows.append({"name": name, "state": state, "label": label})
    return rows


def page_context(
    checkpoint: Checkpoint, user: Any, form: ReviewForm, reassign_form: ReassignForm, url_for: UrlFor
) -> dict[str, Any]:
    """What a review page shows of ``checkpoint`` to ``user`` (fetched with :data:`PAGE_RELATED`)."""
    data = data_rows(
        checkpoint.context, checkpoint.override_data, checkpoint.review.get("schema"), checkpoint.editable_keys
    )
    following = next_item(user, after=checkpoint)
    return {
        "title": heading(checkpoint),
        "subtitle": f"{checkpoint.pipeline_name} · {checkpoint.step}",
        "checkpoint": checkpoint,
        "run": checkpoint.run,
        "steps": pipeline_steps(checkpoint),
        "data_rows": data,
        "edited_keys": [row.label for row in data if row.edited],
        "context_json": json.dumps(checkpoint.context, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder),
        "form": form,
        "reassign_form": reassign_form,
        "pending": checkpoint.is_pending,
        "can_review": permissions.can_review(checkpoint, user),
        "can_reassign": permissions.can_reassign(checkpoint, user, [a.user_id for a in checkpoint.approvals.all()]),
        "assignee_names": [g.name for g in checkpoint.assigned_groups.all()]
        + [str(u) for u in checkpoint.assigned_users.all()],
        "assignees_gone": checkpoint.assigned
        and not checkpoint.assigned_users.all()
        and not checkpoint.assigned_groups.all(),
        "claimed_by_me": checkpoint.claimed_by_id == user.pk,
        "claimed_by_name": actor_name(checkpoint.claimed_by) if checkpoint.claimed_by_id else "",
        "decided_by_name": actor_name(checkpoint.decided_by) if checkpoint.decided_by_id else "",
        "decided_at": local_time(checkpoint.decided_at) if checkpoint.decided_at else "",
        "started_by_name": actor_name(checkpoint.run.started_by) if checkpoint.run.started_by_id else "",
        "expires": local_time(checkpoint.expires_at) if checkpoint.expires_at else "",
        "approvals": [
            (actor_name(a.user), local_time(a.created_at), a.group) for a in checkpoint.approvals.select_related("user")
        ],
        **quorum_context(checkpoint, user),
        "trail": trail_rows(checkpoint.events.select_related("actor"), user),
        "revisions": revision_rows(checkpoint, user, url_for),
        "revisions_left": revisions.revisions_left(checkpoint),
        "next_url": url_for(following) if following else "",
        "choice_options": choices.options(checkpoint.review),
        "multiple_choices": bool(checkpoint.review.get("multiple")),
    }
