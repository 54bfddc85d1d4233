"""The review page's forms: edits (one field per editable key, typed from the Review's JSON Schema or from the
value) and reassignment."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..jsonchecks import UnsafeJSON, check_json_value, too_deep

ANY_KEY_FIELD = "override_data"
FIELD_PREFIX = "edit__"


class PrettyJSONField(forms.JSONField):
    """A JSON editor: an indented textarea.

    Refuses, as a form error, what the API refuses too (:mod:`stepkit_django.jsonchecks`):
    NUL characters, lone surrogates, nesting deeper than the shared limit, and text that
    cannot even be parsed (a number of more than 4,300 digits, nesting deep enough to
    exhaust the stack).
    """

    widget = forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField stepkit-json"})

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise forms.ValidationError(too_deep().message, code="invalid") from None
        except ValueError:  # int() of more than 4,300 digits; json.JSONDecodeError is handled by Django
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        try:
            check_json_value(converted)
        except UnsafeJSON as exc:
            raise forms.ValidationError(exc.message, code="invalid") from None
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Redisplay refused text as typed: Django parses it again here (and would fail the same way).
        try:
            value = super().bound_data(data, initial)
            if not isinstance(value, forms.fields.InvalidJSONInput):
                check_json_value(value)
        except (RecursionError, ValueError):  # UnsafeJSON is a ValueError
            return forms.fields.InvalidJSONInput(data)
        return value

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)


#: The help text of a JSON editor.
JSON_HELP = _("Written as JSON: text in double quotes, lists in [ ], objects in { }.")

#: One-line text up to this length gets a one-line input; longer text, or text with a line break, a text area.
ONE_LINE_CHARS = 80

_TEXTAREA_ATTRS = {"rows": 8, "cols": 80, "class": "vLargeTextField"}


def _line_breaks(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TextField(forms.CharField):
    """Text as the reviewer typed it, with the line endings of the value it edits.

    Browsers send a text area's line breaks as ``\\r\\n`` whatever the text had: text
    equal to the current value but for its line endings is the current value, exactly
    (not an edit), and edited text keeps the current value's line endings (``\\n``
    unless it used ``\\r\\n``).
    """

    def __init__(self, *, current: Any = None, **kwargs: Any) -> None:
        self.current = current if isinstance(current, str) else None
        kwargs.setdefault("strip", False)
        kwargs.setdefault("empty_value", "")
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not isinstance(text, str):
            return text
        normalized = _line_breaks(text)
        if self.current is not None:
            if normalized == _line_breaks(self.current):
                return self.current
            if "\r\n" in self.current:
                return normalized.replace("\n", "\r\n")
        return normalized


class NumberField(forms.FloatField):
    """A number that stays whole when it was whole: ``1200`` is stored as ``1200``, not ``1200.0``.

    A whole number typed for a value that was not a float (an ``int``, or no value) is
    an ``int``; anything else is a ``float``.
    """

    def __init__(self, *, current: Any = None, **kwargs: Any) -> None:
        self.keeps_whole = not isinstance(current, float)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        number = super().to_python(value)
        if number is None or not self.keeps_whole:
            return number
        text = str(value).strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            try:
                return int(text)
            except ValueError:  # more digits than Python converts
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        return number


def _text_widget(current: Any, long_text: bool) -> forms.Widget:
    multiline = long_text or (isinstance(current, str) and ("\n" in current or "\r" in current))
    if multiline or (isinstance(current, str) and len(current) > ONE_LINE_CHARS):
        return forms.Textarea(attrs=_TEXTAREA_ATTRS)
    return forms.TextInput(attrs={"class": "vTextField"})


def field_for(key: str, schema: dict[str, Any] | None, current: Any) -> forms.Field:
    """A form field for ``key``: typed from its JSON Schema (string, integer, number, boolean, enum) when the
    schema describes it, else from the current value (text, whole number, number, yes/no); a JSON editor
    for anything else (lists, objects, no value)."""
    spec = ((schema or {}).get("properties") or {}).get(key) or {}
    required = key in ((schema or {}).get("required") or [])
    label = spec.get("title") or key
    help_text = spec.get("description", "")
    kind = spec.get("type") or _kind_of(current)
    if "enum" in spec and all(isinstance(v, (str, int, float)) for v in spec["enum"]):
        choices = [(v, str(v)) for v in spec["enum"]]
        return forms.TypedChoiceField(
            choices=choices,
            coerce=lambda v: _coerce(v, spec["enum"]),
            label=label,
            required=required,
            help_text=help_text,
        )
    if kind == "string":
        long_text = spec.get("maxLength", 0) > 200  # else, as without a schema, the value decides
        return TextField(
            current=current,
            label=label,
            required=required and spec.get("minLength", 0) > 0,
            min_length=spec.get("minLength"),
            max_length=spec.get("maxLength"),
            widget=_text_widget(current, long_text),
            help_text=help_text,
        )
    if kind == "integer":
        return forms.IntegerField(
            label=label,
            required=required or "type" not in spec,
            min_value=spec.get("minimum"),
            max_value=spec.get("maximum"),
            help_text=help_text,
        )
    if kind == "number":
        return NumberField(
            current=current,
            label=label,
            required=required or "type" not in spec,
            min_value=spec.get("minimum"),
            max_value=spec.get("maximum"),
            help_text=help_text,
        )
    if kind == "boolean":
        return forms.BooleanField(label=label, required=False, help_text=help_text)
    return PrettyJSONField(label=label, required=False, help_text=help_text or JSON_HELP)


def _coerce(value: str, options: list[Any]) -> Any:
    for option in options:
        if str(option) == value:
            return option
    return value


def _kind_of(value: Any) -> str | None:
    """The JSON Schema type of ``value`` for the types that get their own field."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


class ReviewForm(forms.Form):
    """Edits and a comment. ``changes()`` returns only the keys whose value differs from the current data."""

    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text=_("Required to request changes: the step that runs again reads it."),
    )
    to_step = forms.ChoiceField(
        label=_("Run again from"),
        required=False,
        choices=[],
        help_text=_("With Request changes: the step to run again, and every step after it."),
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    #: Fields that are not edits of the data.
    DECISION_FIELDS = ("comment", "to_step", "expected_version")

    def __init__(
        self,
        *args: Any,
        editable: list[str] | None,
        schema: dict[str, Any] | None,
        current: dict[str, Any],
        to_steps: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        steps = to_steps or []
        self.fields["to_step"].choices = [(step, step) for step in steps]  # type: ignore[attr-defined]
        if len(steps) < 2:
            del self.fields["to_step"]  # only the reviewed step: nothing to choose
        elif steps:
            self.initial.setdefault("to_step", steps[-1])
        self.current = current
        self.editable = editable
        if editable is None:
            self.fields[ANY_KEY_FIELD] = PrettyJSONField(
                label=_("Data"),
                required=True,
                help_text=_("The data the run resumes with, as JSON; change any key."),
            )
            self.initial.setdefault(ANY_KEY_FIELD, current)
        else:
            for key in editable:
                self.fields[FIELD_PREFIX + key] = field_for(key, schema, current.get(key))
                self.initial.setdefault(FIELD_PREFIX + key, current.get(key))
        self.order_fields([name for name in self.fields if name not in self.DECISION_FIELDS])

    def clean_override_data(self) -> Any:
        """With any key editable, the data is one JSON object: a list or a bare value would be no edit at all."""
        value = self.cleaned_data.get(ANY_KEY_FIELD)
        if not isinstance(value, dict):
            raise forms.ValidationError(_('The data must be a JSON object: {"key": value, …}.'), code="not_an_object")
        return value

    def edit_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.DECISION_FIELDS]

    def changes(self) -> dict[str, Any]:
        """The edited keys whose value differs from the current data: what a submitted page changes.

        A page submitted as it was shown changes nothing, so that approving it untouched
        records no edit.
        """
        data = self.cleaned_data
        if self.editable is None:
            edited = data.get(ANY_KEY_FIELD)
            if not isinstance(edited, dict):
                return {}
            return {k: v for k, v in edited.items() if not self._unchanged(k, v)}
        changed: dict[str, Any] = {}
        for key in self.editable:
            value = data.get(FIELD_PREFIX + key)
            if not self._unchanged(key, value):
                changed[key] = value
        return changed

    def _unchanged(self, key: str, value: Any) -> bool:
        current = self.current.get(key)
        if current is None:  # no value: an empty field leaves it so
            return value is None or value == "" or value is False
        # 1200 == 1200.0: the same number; but True == 1 is not the same value
        return bool(value == current) and isinstance(value, bool) == isinstance(current, bool)

    def add_override_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the review service's per-key errors next to their fields."""
        for key, messages in errors.items():
            name = ANY_KEY_FIELD if self.editable is None else FIELD_PREFIX + key
            for message in messages:
                if name == ANY_KEY_FIELD and key != "__all__":  # one field holds every key: say which one
                    message = gettext("%(key)s: %(message)s") % {"key": key, "message": message}
                self.add_error(name if name in self.fields else None, message)

    def add_decision_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the review service's refusal of a decision (a missing reason: ``comment``) next to its field."""
        for key, messages in errors.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)


class ReassignForm(forms.Form):
    """Assign a checkpoint to other users and/or groups (replacing the current assignment)."""

    to_users = forms.CharField(
        label=_("Users"),
        required=False,
        max_length=2000,
        help_text=_("Usernames, separated by commas."),
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    to_groups = forms.ModelMultipleChoiceField(
        label=_("Groups"),
        queryset=Group.objects.order_by("name"),
        required=False,
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
    )

    def clean_to_users(self) -> list[str]:
        # Whether they exist, are active and may review is the service's to say (InvalidAssignment).
        return [name.strip() for name in self.cleaned_data["to_users"].split(",") if name.strip()]

    def add_assignment_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the review service's refusal of the targets next to their fields."""
        for key, messages in errors.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and not data.get("to_users") and not data.get("to_groups"):
            raise forms.ValidationError(_("Choose at least one user or group."))
        return data
