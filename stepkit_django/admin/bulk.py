"""Bulk approve and reject in the queue, through a confirmation page that lists what will be decided.

Selecting rows and choosing "Approve selected" first shows the selected items by
title (with the versions the queue listed, carried along, so the decision is
about the data that was on screen); only "Yes, approve" on that page decides
them, each through the review services on its own. Rejecting asks for a reason,
required when one of the items' reviews requires it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import choices, review
from ..exceptions import StepkitError
from ..models import Checkpoint
from ..reviewing.display import item_label

__all__ = ["BulkDecision", "decide_selected", "item_label"]

#: The field that says the confirmation page was seen and confirmed.
CONFIRMED = "confirmed"


class BulkRejectForm(forms.Form):
    comment = forms.CharField(
        label=_("Reason"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Shown with each rejected item in its history."),
    )


class BulkDecision:
    """One bulk decision ("approve" or "reject") over the selected checkpoints."""

    def __init__(self, modeladmin: Any, request: HttpRequest, queryset: QuerySet[Checkpoint], decision: str) -> None:
        self.modeladmin, self.request, self.decision = modeladmin, request, decision
        self.items = list(queryset.order_by("created_at", "pk"))

    def needs_reason(self) -> bool:
        return self.decision == "reject" and any(cp.review.get("require_reject_reason") for cp in self.items)

    def act(self, comment: str) -> Callable[[Checkpoint, int], Any]:
        user = self.request.user
        if self.decision == "approve":
            return lambda cp, version: review.approve(cp, user, comment=comment, expected_version=version)
        return lambda cp, version: review.reject(cp, user, comment, expected_version=version)

    def respond(self, listed_version: Callable[[HttpRequest, Checkpoint], int]) -> TemplateResponse | None:
        """The confirmation page; or, once confirmed, the decisions (None: back to the queue)."""
        form = BulkRejectForm(self.request.POST if CONFIRMED in self.request.POST else None)
        if form.is_bound and form.is_valid():
            comment = form.cleaned_data["comment"].strip()
            if self.needs_reason() and not comment:
                form.add_error("comment", gettext("Say why you reject these: one of them requires a reason."))
            else:
                self.apply(listed_version, comment)
                return None
        return self.page(form)

    def apply(self, listed_version: Callable[[HttpRequest, Checkpoint], int], comment: str) -> None:
        done, refused = [], []
        act = self.act(comment)
        for checkpoint in self.items:
            if self.decision == "approve" and choices.requires_choice(checkpoint):
                # Approving it means choosing where the run goes: that is one person's decision on its page.
                refused.append(
                    gettext("%(item)s: it needs a choice; open it to choose") % {"item": item_label(checkpoint)}
                )
                continue
            try:
                act(checkpoint, listed_version(self.request, checkpoint))
                done.append(item_label(checkpoint))
            except StepkitError as exc:
                refused.append(f"{item_label(checkpoint)}: {exc}")
        if done:
            text = (
                ngettext("Approved %(count)d item: %(items)s.", "Approved %(count)d items: %(items)s.", len(done))
                if self.decision == "approve"
                else ngettext("Rejected %(count)d item: %(items)s.", "Rejected %(count)d items: %(items)s.", len(done))
            )
            self.modeladmin.message_user(
                self.request, text % {"count": len(done), "items": "; ".join(done)}, messages.SUCCESS
            )
        if refused:
            text = ngettext(
                "%(count)d item was not decided: %(items)s", "%(count)d items were not decided: %(items)s", len(refused)
            )
            level = messages.WARNING if done else messages.ERROR
            values = {"count": len(refused), "items": "; ".join(refused)}
            self.modeladmin.message_user(self.request, text % values, level)

    def page(self, form: BulkRejectForm) -> TemplateResponse:
        opts = self.modeladmin.model._meta
        approving = self.decision == "approve"
        versions = {
            key: value for key, value in self.request.POST.items() if key.startswith(self.modeladmin.version_field)
        }
        context = {
            **self.modeladmin.admin_site.each_context(self.request),
            "opts": opts,
            "title": gettext("Approve these items?") if approving else gettext("Reject these items?"),
            "decision": self.decision,
            "action": "approve_selected" if approving else "reject_selected",
            "items": [(cp, item_label(cp)) for cp in self.items],
            "versions": versions,
            "selected": helpers.ACTION_CHECKBOX_NAME,
            "confirmed": CONFIRMED,
            "form": form,
            "needs_reason": self.needs_reason(),
            "need_a_choice": [item_label(cp) for cp in self.items if approving and choices.requires_choice(cp)],
        }
        return TemplateResponse(self.request, "admin/stepkit_django/checkpoint/bulk_confirm.html", context)


def decide_selected(
    modeladmin: Any,
    request: HttpRequest,
    queryset: QuerySet[Checkpoint],
    decision: str,
    listed_version: Callable[[HttpRequest, Checkpoint], int],
) -> TemplateResponse | None:
    """The admin action's body for ``decision`` ("approve" or "reject")."""
    return BulkDecision(modeladmin, request, queryset, decision).respond(listed_version)
