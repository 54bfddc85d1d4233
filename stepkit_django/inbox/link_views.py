"""The pages of signed action links: a confirmation on GET (never a decision), the decision on POST.

``GET review/link/<token>/`` verifies the token (:mod:`stepkit_django.links`) and shows the item (title,
summary, the effective data), the outcome in words and a form: it reads and never writes, so a mail
scanner that fetches every link of an email changes nothing. The form's ``POST`` (CSRF-protected) takes
the decision through :mod:`stepkit_django.review` as the link's user, at the version the link was made
at, inside ``audit.via("link")``: its audit events say ``"via": "link"``.

``STEPKIT["ACTION_LINKS_LOGIN"]``: ``"required"`` (both need a logged-in user, the link's; others are sent
to ``LOGIN_URL`` first) or ``"link"`` (the link stands for its user; a different logged-in user is refused).

A link that cannot be used gets a page that says why and what to do, with a 4xx status
(:data:`STATUS`), and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, URLPattern, URLResolver, path, reverse
from django.utils.translation import gettext, gettext_lazy, pgettext
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from .. import audit, choices, links, review
from ..conf import settings
from ..exceptions import ActionLinkInvalid, InvalidDecision, InvalidOverride, ReviewConflict, ReviewPermissionDenied
from ..models import Checkpoint
from ..status import CheckpointStatus

__all__ = ["STATUS", "link", "urlpatterns"]

#: The HTTP status of each refusal: a link that is not one (400), that is not its viewer's to use (403),
#: that no longer works (410: expired, used, or the item changed).
STATUS = {"tampered": 400, "foreign_user": 403, "not_allowed": 403, "expired": 410, "used": 410, "stale": 410}

_LOGIN_MODES = ("required", "link")


class DecisionForm(forms.Form):
    """The confirmation's form: an optional comment, or the reason a rejection needs."""

    comment = forms.CharField(
        label=gettext_lazy("Comment (optional)"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, reason_required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if reason_required:
            field = self.fields["comment"]
            field.required = True
            field.label = gettext("Reason (required)")
            field.error_messages["required"] = gettext("Say why you reject this: the reason is required.")


def _login_mode() -> str:
    mode = str(settings.ACTION_LINKS_LOGIN)
    return mode if mode in _LOGIN_MODES else "required"


def _inbox_url() -> str:
    for name in ("stepkit_inbox:queue", "stepkit_inbox:index"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


def _item_url(cp: Checkpoint | None) -> str:
    if cp is None:
        return ""
    try:
        return cp.get_absolute_url()
    except NoReverseMatch:
        return ""


def _base(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context = {"base_template": settings.INBOX_BASE_TEMPLATE, "inbox_url": _inbox_url(), **context}
    response = render(request, f"stepkit_django/inbox/{template}", context, status=status)
    # The token is in the URL: never sent on to another site ("no-referrer" would make browsers send
    # "Origin: null" with the form, which CSRF protection refuses).
    response["Referrer-Policy"] = "same-origin"
    return response


#: What each refusal says to the reviewer: a heading and what to do.
def _refusal_text(reason: str) -> tuple[str, str]:
    texts = {
        "tampered": (
            gettext("This link is not valid"),
            gettext(
                "It may have been cut or changed on the way (a long link can be broken in two by an email program). "
                "Open the item from your inbox instead."
            ),
        ),
        "expired": (
            gettext("This link has expired"),
            gettext("Links in emails work for a limited time. Open the item from your inbox to decide it."),
        ),
        "foreign_user": (
            gettext("This link is not yours"),
            gettext(
                "It was made for another account than the one you are logged in with. "
                "Log in with the account the email was sent to, or open your own inbox."
            ),
        ),
        "not_allowed": (
            gettext("You cannot review this item"),
            gettext("Your account may not review this item (any more). Ask whoever manages the reviews."),
        ),
        "used": (
            gettext("This link was used already"),
            gettext(
                "Each link decides once, and it was already used or the item changed since the email. "
                "Open the item to see where it stands."
            ),
        ),
        "stale": (
            gettext("This link no longer works"),
            gettext(
                "It was already used or the item changed since the email (someone edited or decided it). "
                "Open the item to see where it stands."
            ),
        ),
    }
    return texts[reason]


def _refused(request: HttpRequest, error: ActionLinkInvalid, cp: Checkpoint | None = None) -> HttpResponse:
    heading, advice = _refusal_text(error.reason)
    context = {
        "reason": error.reason,
        "heading": heading,
        "advice": advice,
        # Only to the link's own user, and only once the item is known to be theirs to know of.
        "item_url": _item_url(cp) if error.reason in ("used", "stale") else "",
        "detail": str(error) if error.reason in ("used", "stale") else "",
    }
    return _base(request, "link_refused.html", context, status=STATUS[error.reason])


def _outcome_words(cp: Checkpoint, link: links.ActionLink) -> str:
    if link.outcome == "reject":
        return pgettext("action link", "Reject")
    if link.choice:
        label = dict(choices.options(cp.review)).get(link.choice, link.choice)
        return pgettext("action link", "Approve: “%(choice)s”") % {"choice": label}
    return pgettext("action link", "Approve")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _confirmation(
    request: HttpRequest, cp: Checkpoint, link: links.ActionLink, form: DecisionForm, status: int = 200
) -> HttpResponse:
    context = {
        "checkpoint": cp,
        "link": link,
        "outcome": _outcome_words(cp, link),
        "data": [(key, _as_text(value)) for key, value in cp.effective_context.items()],
        "form": form,
        "item_url": _item_url(cp),
    }
    return _base(request, "link_confirm.html", context, status=status)


def _decide(cp: Checkpoint, user: Any, link: links.ActionLink, comment: str) -> Checkpoint:
    with audit.via("link"):
        if link.outcome == "reject":
            return review.reject(cp, user, comment=comment, expected_version=link.version)
        return review.approve(cp, user, comment=comment, expected_version=link.version, choice=link.choice or None)


@never_cache
@xframe_options_deny
@csrf_protect
@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    """The confirmation of a signed action link (GET) and its decision (POST)."""
    mode = _login_mode()
    if mode == "required" and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        verified = links.read(token)
        cp, user = links.resolve(verified, request.user)
    except ActionLinkInvalid as error:
        return _refused(request, error)
    reason_required = verified.outcome == "reject" and bool(cp.review.get("require_reject_reason"))
    if request.method != "POST":
        return _confirmation(request, cp, verified, DecisionForm(reason_required=reason_required))
    form = DecisionForm(request.POST, reason_required=reason_required)
    if not form.is_valid():
        return _confirmation(request, cp, verified, form, status=400)
    try:
        decided = _decide(cp, user, verified, form.cleaned_data["comment"])
    except (InvalidDecision, InvalidOverride) as error:
        for messages in error.errors.values():
            for message in messages:
                form.add_error(None, message)
        return _confirmation(request, cp, verified, form, status=400)
    except ReviewPermissionDenied:
        return _refused(request, ActionLinkInvalid("not_allowed"))
    except ReviewConflict as conflict:
        try:  # decided or changed meanwhile (a second tab, a double click): say which
            links.resolve(verified, request.user)
        except ActionLinkInvalid as error:
            return _refused(request, error, cp)
        return _refused(request, ActionLinkInvalid("stale", str(conflict)), cp)
    decided.refresh_from_db()
    done = {
        "checkpoint": decided,
        "outcome": _outcome_words(decided, verified),
        "pending": decided.status == CheckpointStatus.PENDING,
        "item_url": _item_url(decided),
    }
    return _base(request, "link_done.html", done)


urlpatterns: list[URLPattern | URLResolver] = [
    path("link/<str:token>/", link, name="link"),
]
