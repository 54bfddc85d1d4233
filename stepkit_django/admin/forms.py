"""The review page's forms: edits (one field per editable key, typed from the Review's JSON Schema) and reassignment."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.core.serializers.json import DjangoJSONEncoder

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


def field_for(key: str, schema: dict[str, Any] | None, current: Any) -> forms.Field:
    """A form field for ``key`` from its schema (string, integer, number, boolean, enum), else a JSON editor."""
    spec = ((schema or {}).get("properties") or {}).get(key) or {}
    required = key in ((schema or {}).get("required") or [])
    label = spec.get("title") or key
    help_text = spec.get("description", "")
    kind = spec.get("type")
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
        long_text = spec.get("maxLength", 10_000) > 200 or (isinstance(current, str) and "\n" in current)
        widget = forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"}) if long_text else None
        return forms.CharField(
            label=label,
            required=required and spec.get("minLength", 0) > 0,
            strip=False,
            min_length=spec.get("minLength"),
            max_length=spec.get("maxLength"),
            widget=widget,
            help_text=help_text,
            empty_value="",
        )
    if kind in ("integer", "number"):
        number = forms.IntegerField if kind == "integer" else forms.FloatField
        return number(
            label=label,
            required=required,
            min_value=spec.get("minimum"),
            max_value=spec.get("maximum"),
            help_text=help_text,
        )
    if kind == "boolean":
        return forms.BooleanField(label=label, required=False, help_text=help_text)
    return PrettyJSONField(label=label, required=False, help_text=help_text or "JSON")


def _coerce(value: str, options: list[Any]) -> Any:
    for option in options:
        if str(option) == value:
            return option
    return value


class ReviewForm(forms.Form):
    """Edits and a comment. ``changes()`` returns only the keys whose value differs from the current data."""

    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        editable: list[str] | None,
        schema: dict[str, Any] | None,
        current: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.current = current
        self.editable = editable
        if editable is None:
            self.fields[ANY_KEY_FIELD] = PrettyJSONField(
                label="Data", required=True, help_text="The context the run resumes with; change any key."
            )
            self.initial.setdefault(ANY_KEY_FIELD, current)
        else:
            for key in editable:
                self.fields[FIELD_PREFIX + key] = field_for(key, schema, current.get(key))
                self.initial.setdefault(FIELD_PREFIX + key, current.get(key))
        self.order_fields([name for name in self.fields if name not in ("comment", "expected_version")])

    def edit_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in ("comment", "expected_version")]

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        if self.editable is None:
            edited = data.get(ANY_KEY_FIELD)
            if not isinstance(edited, dict):
                return {}
            return {k: v for k, v in edited.items() if self.current.get(k, object()) != v}
        changed: dict[str, Any] = {}
        for key in self.editable:
            value = data.get(FIELD_PREFIX + key)
            if value != self.current.get(key) and not (value in ("", None) and self.current.get(key) is None):
                changed[key] = value
        return changed

    def add_override_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the review service's per-key errors next to their fields."""
        for key, messages in errors.items():
            name = ANY_KEY_FIELD if self.editable is None else FIELD_PREFIX + key
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


class ReassignForm(forms.Form):
    """Assign a checkpoint to other users and/or groups (replacing the current assignment)."""

    to_users = forms.CharField(
        label="Users",
        required=False,
        max_length=2000,
        help_text="Usernames, separated by commas.",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    to_groups = forms.ModelMultipleChoiceField(
        label="Groups",
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
            raise forms.ValidationError("Choose at least one user or group.")
        return data
