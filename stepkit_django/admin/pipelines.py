"""The admin's read-only pipelines pages: every registered pipeline, its steps and review rules, its
pending work, and a "Start a run" form built from its ``input_schema``.

Added to the admin through :class:`~stepkit_django.admin.runs.PipelineRunAdmin`'s ``get_urls()``
(:func:`urls`). Who may read the pages and start runs is :mod:`stepkit_django.permissions`'s to say;
runs start through :func:`stepkit_django.runs.start`, which checks the input against the schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import django
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_deny

from .. import permissions
from ..conf import settings
from ..describe import steps_of
from ..exceptions import InvalidInput, PipelineNotFound, StepkitError
from ..models import Checkpoint, PipelineRun
from ..registry import Registration, get_registration, registered
from ..review_spec import Review
from ..runs import start
from ..status import CheckpointStatus, RunStatus

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = ["input_form_class", "input_from_form", "review_rules", "urls"]

INDEX_TEMPLATE = "admin/stepkit_django/pipelines/index.html"
DETAIL_TEMPLATE = "admin/stepkit_django/pipelines/detail.html"
#: Strings whose ``maxLength`` is above this (or that have none and ``"format": "textarea"``) get a text area.
LONG_TEXT = 200
FORM_PREFIX = "input"


def urls(model_admin: ModelAdmin[Any]) -> list[URLPattern]:
    """The pipelines pages, for ``model_admin.get_urls()`` (before its own)."""
    site = model_admin.admin_site
    # Never framed: the start form is a button another site could trick a user into clicking.
    return [
        path(
            "pipelines/",
            site.admin_view(xframe_options_deny(lambda request: index_view(model_admin, request))),
            name="stepkit_django_pipelines",
        ),
        path(
            "pipelines/<path:name>/",
            site.admin_view(xframe_options_deny(lambda request, name: pipeline_view(model_admin, request, name))),
            name="stepkit_django_pipeline",
        ),
    ]


def pipelines_url(request: HttpRequest) -> str | None:
    """The pipelines index, for a link, if ``request.user`` may read it."""
    return reverse("admin:stepkit_django_pipelines") if permissions.can_see_pipelines(request.user) else None


# -- the pages -----------------------------------------------------------------------------------------


def index_view(model_admin: ModelAdmin[Any], request: HttpRequest) -> TemplateResponse:
    """Every registered pipeline with its steps, reviews, pending work and whether it can be started here."""
    if not permissions.can_see_pipelines(request.user):
        raise PermissionDenied
    pending = {row["pipeline_name"]: row for row in _pending(request).values("pipeline_name").annotate(**_COUNTS)}
    rows = []
    for name, pipeline in registered().items():
        registration = get_registration(name)
        steps = steps_of(pipeline)
        waiting = pending.get(name, {})
        rows.append(
            {
                "name": name,
                "version": pipeline.version,
                "url": reverse("admin:stepkit_django_pipeline", args=[name]),
                "steps": len(steps),
                "reviews": sum(1 for info in steps if info.review is not None),
                "pending": waiting.get("count", 0),
                "oldest": waiting.get("oldest"),
                "queue_url": _queue_url(name),
                "startable": registration.input_schema is not None,
            }
        )
    context = {
        **_base_context(model_admin, request),
        "title": _("Pipelines"),
        "pipelines": rows,
        "can_start": permissions.can_start_runs(request.user),
    }
    return TemplateResponse(request, INDEX_TEMPLATE, context)


def pipeline_view(model_admin: ModelAdmin[Any], request: HttpRequest, name: str) -> HttpResponse:
    """One pipeline: its steps in order with their review rules, its pending work, and the start form."""
    if not permissions.can_see_pipelines(request.user):
        raise PermissionDenied
    try:
        registration = get_registration(name)
    except PipelineNotFound:
        raise Http404(gettext("No pipeline of that name is registered.")) from None
    can_start = permissions.can_start_runs(request.user)
    schema = registration.input_schema
    form = None
    if schema is not None and can_start:
        form = input_form_class(schema)(request.POST if request.method == "POST" else None, prefix=FORM_PREFIX)
    if request.method == "POST":
        if form is None:  # no form was offered: not allowed, or nothing to start it with
            raise PermissionDenied
        run = _start(request, name, form)
        if run is not None:
            return HttpResponseRedirect(request.path)
        model_admin.message_user(request, gettext("The run was not started; see the errors below."), messages.ERROR)
    return _render_pipeline(model_admin, request, registration, form, can_start)


def _start(request: HttpRequest, name: str, form: forms.Form) -> PipelineRun | None:
    """The run started from the valid ``form``, with a message linking to it; None (with form errors) if refused."""
    if not form.is_valid():
        return None
    try:
        run = start(name, input_from_form(form), user=request.user)
    except InvalidInput as exc:
        add_input_errors(form, exc.errors)
        return None
    except StepkitError as exc:  # e.g. a value that cannot be stored
        form.add_error(None, str(exc))
        return None
    link = format_html(
        '<a href="{}">{}</a>', reverse("admin:stepkit_django_pipelinerun_change", args=[run.pk]), str(run.pk)[:8]
    )
    text = format_html(
        gettext("The run {run} was started. Status: {status}."), run=link, status=run.get_status_display()
    )
    level = messages.WARNING if run.status == RunStatus.FAILED else messages.SUCCESS
    messages.add_message(request, level, text)
    return run


def _render_pipeline(
    model_admin: ModelAdmin[Any],
    request: HttpRequest,
    registration: Registration,
    form: forms.Form | None,
    can_start: bool,
) -> TemplateResponse:
    pipeline = registration.pipeline
    name = pipeline.name or ""
    pending = _pending(request).filter(pipeline_name=name)
    per_step = {row["step"]: row["count"] for row in pending.values("step").annotate(**_COUNTS)}
    oldest = pending.order_by("created_at", "pk").only("pk", "created_at", "step").first()
    steps = [
        {
            "number": number,
            "path": info.path,
            "name": info.step.name,
            "indent": info.depth * 2,
            "kind": KINDS.get(info.step.kind, info.step.kind),
            "sometimes": info.step.options.condition not in (None, True),
            "review": review_rules(info.review) if info.review is not None else None,
            "title": info.review.title if info.review is not None else "",
            "pending": per_step.get(info.path, 0),
            "queue_url": _queue_url(name, info.path) if info.review is not None else None,
        }
        for number, info in enumerate(steps_of(pipeline), start=1)
    ]
    context = {
        **_base_context(model_admin, request, crumbs=[(reverse("admin:stepkit_django_pipelines"), _("Pipelines"))]),
        "title": name,
        "pipeline": pipeline,
        "durability": DURABILITY.get(registration.durability, registration.durability),
        "steps": steps,
        "pending": sum(per_step.values()),
        "oldest": oldest,
        "oldest_url": reverse("admin:stepkit_django_checkpoint_change", args=[oldest.pk]) if oldest else None,
        "queue_url": _queue_url(name),
        "has_input_schema": registration.input_schema is not None,
        "can_start": can_start,
        "form": form,
    }
    return TemplateResponse(request, DETAIL_TEMPLATE, context)


_COUNTS = {"count": Count("pk", distinct=True), "oldest": Min("created_at")}

KINDS = {"step": _("step"), "branch": _("branch"), "transform": _("transform")}
DURABILITY = {
    "step": _("progress is saved after every step"),
    "pause": _("progress is saved when the run pauses, fails or ends"),
}


def _pending(request: HttpRequest) -> Any:
    """The pending checkpoints of ``request.user``'s queue (what the queue would list them)."""
    return Checkpoint.objects.for_user(request.user).filter(status=CheckpointStatus.PENDING).order_by()


def _queue_url(name: str, step: str | None = None) -> str:
    from urllib.parse import urlencode

    query = {"pipeline_name": name, **({"step": step} if step else {})}
    return f"{reverse('admin:stepkit_django_checkpoint_changelist')}?{urlencode(query)}"


def _base_context(
    model_admin: ModelAdmin[Any], request: HttpRequest, crumbs: Sequence[tuple[str, Any]] = ()
) -> dict[str, Any]:
    opts = model_admin.opts
    return {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "breadcrumbs_as_list": django.VERSION >= (6, 0),
        "crumbs": [(reverse("admin:app_list", args=[opts.app_label]), opts.app_config.verbose_name), *crumbs],
    }


# -- review rules in words ------------------------------------------------------------------------------


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or callable(value):
        return [value]
    return list(value)


def review_rules(spec: Review) -> list[tuple[str, str]]:
    """A step's ``Review`` as ``(rule, in words)`` rows, for people who work the queue."""
    groups = [gettext("group %(name)s") % {"name": g} for g in _listed(spec.assign_to_group) if isinstance(g, str)]
    users = [gettext("user %(name)s") % {"name": u} for u in _listed(spec.assign_to_user) if isinstance(u, str)]
    chosen = any(callable(a) for a in [*_listed(spec.assign_to_group), *_listed(spec.assign_to_user)])
    if chosen:
        users.append(gettext("people chosen from the run's data when it pauses"))
    if not groups and not users and spec.quorum_groups:  # the item goes to the groups whose approvals it needs
        groups = [gettext("group %(name)s") % {"name": g} for g in spec.quorum_groups]
    assignees = ", ".join([*groups, *users]) or gettext("anyone with the permission")
    editable = gettext("any value") if spec.editable is None else (", ".join(spec.editable) or gettext("nothing"))
    rows = [
        (gettext("Pauses"), gettext("only sometimes (a condition decides)") if spec.when else gettext("always")),
        (gettext("Assigned to"), assignees),
        (gettext("Permission"), spec.permission or settings.DEFAULT_REVIEW_PERMISSION),
        (gettext("Approvals required"), _approvals_in_words(spec)),
        (
            gettext("Four-eyes rule"),
            gettext("the person who started the run may review it too")
            if spec.allow_self_approval
            else gettext("the person who started the run may not review it"),
        ),
        (gettext("Deadline"), _deadline(spec)),
        (gettext("Editable"), editable),
    ]
    if spec.schema is not None:
        rows.append((gettext("Edits checked"), gettext("against a schema")))
    if spec.choices:
        labels = ", ".join(gettext(str(label)) for label in spec.choices.values())
        how = gettext("one or more of") if spec.multiple else gettext("one of")
        values = {"how": how, "labels": labels, "key": spec.choice_key}
        rows.append((gettext("Choices"), gettext("%(how)s %(labels)s (written to %(key)s)") % values))
    return rows


def _approvals_in_words(spec: Review) -> str:
    """``"2"``, or for a per-group quorum ``"1 from legal, 1 from finance"``."""
    required = spec.approvals_required
    if not isinstance(required, Mapping):
        return str(required)
    return ", ".join(
        gettext("%(count)d from %(group)s") % {"count": count, "group": group} for group, count in required.items()
    )


def _deadline(spec: Review) -> str:
    if spec.timeout is None:
        return gettext("none")
    then = {
        "reject": gettext("then it is rejected"),
        "approve": gettext("then it is approved as it stands"),
        "escalate": gettext("then it goes to group %(group)s") % {"group": spec.escalate_to_group},
        "fail": gettext("then the run fails"),
    }[spec.on_timeout]
    return f"{duration(spec.timeout)}, {then}"


def duration(delta: timedelta) -> str:
    """``2 days``, ``1 hour 30 minutes``: a deadline in words (seconds left out)."""
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        ngettext("%(n)d day", "%(n)d days", days) % {"n": days} if days else "",
        ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours} if hours else "",
        ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes} if minutes else "",
    ]
    return " ".join(p for p in parts if p) or gettext("less than a minute")


# -- the start form, built from the input schema ----------------------------------------------------------


class JSONChoiceField(forms.TypedChoiceField):
    """An ``enum``: the options are its values as text, the cleaned value is the value itself (an int stays an int)."""

    def __init__(self, values: Sequence[Any], *, required: bool, blank: bool, **kwargs: Any) -> None:
        keys = [str(v) for v in values]
        if len(set(keys)) != len(keys):  # 1 and "1" in one enum: tell them apart
            keys = [json.dumps(v) for v in values]
        self.values = dict(zip(keys, values, strict=True))
        choices = [("", "---------")] if blank else []
        choices += [(key, str(value)) for key, value in zip(keys, values, strict=True)]
        super().__init__(choices=choices, coerce=self.values.__getitem__, empty_value=None, required=required, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        for key, known in self.values.items():
            if known == value and type(known) is type(value):
                return key
        return value


def _first_type(prop: Mapping[str, Any]) -> str | None:
    declared = prop.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared if isinstance(declared, str) else None


def schema_field(name: str, prop: Mapping[str, Any], *, required: bool) -> forms.Field:
    """The form field of one property of the input schema."""
    options: dict[str, Any] = {
        "label": capfirst(str(prop.get("title") or name.replace("_", " "))),
        "help_text": str(prop.get("description", "")),
        "required": required,
    }
    if "default" in prop:
        options["initial"] = prop["default"]
    kind = _first_type(prop)
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return JSONChoiceField(prop["enum"], blank=not required or "default" not in prop, **options)
    if kind == "boolean":
        return forms.BooleanField(**{**options, "required": False})  # unticked is false, not missing
    if kind == "integer":
        return forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **options)
    if kind == "number":
        return forms.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **options)
    if kind == "string":
        lengths: dict[str, Any] = {"min_length": prop.get("minLength"), "max_length": prop.get("maxLength")}
        if prop.get("format") == "email":
            return forms.EmailField(**lengths, **options)
        if prop.get("format") == "date":
            return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **options)
        long = prop.get("format") == "textarea" or (lengths["max_length"] or 0) > LONG_TEXT
        widget = forms.Textarea(attrs={"rows": 5}) if long else forms.TextInput(attrs={"class": "vTextField"})
        return forms.CharField(widget=widget, **lengths, **options)
    # an object, a list, or anything else: JSON
    return forms.JSONField(widget=forms.Textarea(attrs={"rows": 4}), **options)


def input_form_class(schema: Mapping[str, Any]) -> type[forms.Form]:
    """A form with a field per property of ``schema``, in its order, typed from it."""
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    fields = {
        str(name): schema_field(str(name), prop, required=name in required)
        for name, prop in properties.items()
        if isinstance(prop, Mapping)
    }
    return type("StartRunForm", (forms.Form,), {**fields, "required_css_class": "required"})


def input_from_form(form: forms.Form) -> dict[str, Any]:
    """The run's input: the form's values, typed, without the optional fields left empty."""
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.cleaned_data.get(name)
        if isinstance(field, forms.BooleanField):
            data[name] = bool(value)
        elif value is None or value == "":
            continue
        elif isinstance(value, date):
            data[name] = value.isoformat()
        else:
            data[name] = value
    return data


def add_input_errors(form: forms.Form, errors: Mapping[str, list[str]]) -> None:
    """Show ``InvalidInput.errors`` next to their fields (the others above the form)."""
    for key, messages_ in errors.items():
        if key in form.fields:
            form.add_error(key, list(messages_))
        elif key == "__all__":
            form.add_error(None, list(messages_))
        else:
            form.add_error(None, [f"{key}: {message}" for message in messages_])
