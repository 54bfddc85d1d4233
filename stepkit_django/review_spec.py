"""``Review``: the declaration that a step pauses for a person.

``.step("generate", fn, review=Review(...))`` means: after this step completes
(and ``when`` holds), store a checkpoint and pause the run until it is decided.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils.functional import Promise

from .engine.builder import register_step_option
from .exceptions import ReviewMisconfigured

__all__ = ["MAX_SUMMARY_ITEMS", "MAX_TITLE_LENGTH", "ON_TIMEOUT_CHOICES", "Review", "default_title"]

ON_TIMEOUT_CHOICES = ("reject", "approve", "escalate", "fail")

# A group name, or a callable(ctx) returning users and/or groups (objects, names or ids).
Assignee = str | Callable[[dict[str, Any]], Any]
# A format string over the context ("Pay {payee} {amount} EUR"), or a callable(ctx) returning the title.
Title = str | Callable[[dict[str, Any]], str]
# Context key names, or a callable(ctx) returning a short mapping of labels to values.
Summary = Sequence[str] | Callable[[dict[str, Any]], Mapping[str, Any]]

#: Longer titles are cut (with an ellipsis) to fit ``Checkpoint.title``.
MAX_TITLE_LENGTH = 200
#: A summary has at most this many entries: it is shown on every row of the queue.
MAX_SUMMARY_ITEMS = 6
#: Longer summary labels and values are cut (with an ellipsis).
MAX_LABEL_LENGTH = 40
MAX_VALUE_LENGTH = 120


@dataclass(frozen=True)
class Review:
    """How a checkpoint is reviewed. Every argument is optional."""

    #: Keys a reviewer may change; ``None`` means any key.
    editable: Sequence[str] | None = None
    #: JSON Schema the context must satisfy after the edits (checked with ``jsonschema``).
    schema: dict[str, Any] | None = None
    #: Pause only when this returns true, e.g. ``lambda ctx: ctx["amount"] > 1000``.
    when: Callable[[dict[str, Any]], Any] | None = None
    #: Group name(s) the checkpoint is assigned to, or callables(ctx) returning users/groups.
    assign_to_group: Assignee | Sequence[Assignee] | None = None
    #: User(s) the checkpoint is assigned to: usernames, or callables(ctx) returning users.
    assign_to_user: Assignee | Sequence[Assignee] | None = None
    #: Permission a reviewer needs (``"app_label.codename"``); default: ``STEPKIT["DEFAULT_REVIEW_PERMISSION"]``.
    permission: str | None = None
    #: Quorum: this many distinct users must approve; or a mapping of group names to counts
    #: (``{"legal": 1, "finance": 1}``): that many distinct members of each group (see :mod:`stepkit_django.quorum`).
    approvals_required: int | Mapping[str, int] = 1
    #: Four-eyes: unless true, the user who started the run may not review it.
    allow_self_approval: bool = False
    #: Response deadline, counted from the pause.
    timeout: timedelta | None = None
    #: What ``expire_due()`` does after the deadline: reject, approve (current data), escalate or fail.
    on_timeout: str = "reject"
    #: Group that receives the checkpoint when ``on_timeout="escalate"``.
    escalate_to_group: str | None = None
    #: What reviewers see first in the queue: a format string over the context (``"Pay {payee} {amount} EUR"``,
    #: ``str.format_map``) or a callable(ctx) returning a string; default: the pipeline's name and the step.
    title: Title = ""
    #: What tells one item from the next in the queue: context key names, or a callable(ctx) returning a
    #: short mapping of labels to values.
    summary: Summary | None = None
    #: A rejection must give a reason (the comment), which the run's starter and the trail then show.
    require_reject_reason: bool = False
    #: The outcomes a reviewer picks one of when approving: a mapping of keys (written into the context) to
    #: labels (shown on the buttons), e.g. ``{"publish": "Publish now", "archive": "Archive"}``.
    choices: Mapping[str, str] | None = None
    #: The context key the chosen key is written to, for a following ``branch_on``/``when`` to route on.
    choice_key: str = "choice"
    #: Several choices may be picked: the context then holds a list of keys, in the order of ``choices``.
    multiple: bool = False
    #: The context key under which the steps after a decision read it: ``{"outcome", "comment", "by", "at",
    #: "revision"}``. Reserved: a run's input or a step's output that sets it fails loudly (DecisionKeyCollision).
    decision_key: str = "review"
    #: How many times a reviewer may request changes on this step in one run; then only approve or reject.
    max_revisions: int = 3
    #: Who is told of this review's events: notifiers (``EmailNotifier()``, ``WebhookNotifier(url, secret)``…)
    #: and/or names of ``STEPKIT["NOTIFIERS"]``; None: every notifier of ``STEPKIT["NOTIFIERS"]``; ``[]``: none.
    notify: Sequence[Any] | None = None
    #: Remind the reviewers (``due_soon``) this long before the deadline (needs ``timeout``).
    remind_before: timedelta | None = None
    #: Remind them again this often while the item waits (the first time after this long, without
    #: ``remind_before``); never after the deadline.
    remind_every: timedelta | None = None
    #: The review-requested emails carry approve and reject links made for each recipient
    #: (:func:`stepkit_django.review.action_url`): a confirmation page, then the decision. Not in webhooks.
    email_actions: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.editable is not None and (
            isinstance(self.editable, str) or not all(isinstance(k, str) for k in self.editable)
        ):
            raise TypeError("Review(editable=...) must be a list of key names")
        self._check_approvals_required()
        if self.on_timeout not in ON_TIMEOUT_CHOICES:
            raise ValueError(f"Review(on_timeout=...) must be one of {', '.join(ON_TIMEOUT_CHOICES)}")
        if self.on_timeout == "escalate" and not self.escalate_to_group:
            raise ValueError('Review(on_timeout="escalate") needs escalate_to_group')
        if self.timeout is not None and (not isinstance(self.timeout, timedelta) or self.timeout.total_seconds() <= 0):
            raise ValueError("Review(timeout=...) must be a positive timedelta")
        if self.when is not None and not callable(self.when):
            raise TypeError("Review(when=...) must be callable")
        if self.permission is not None and (not isinstance(self.permission, str) or "." not in self.permission):
            raise ValueError('Review(permission=...) must look like "app_label.codename"')
        if not isinstance(self.require_reject_reason, bool):
            raise TypeError("Review(require_reject_reason=...) must be True or False")
        if not isinstance(self.email_actions, bool):
            raise TypeError("Review(email_actions=...) must be True or False")
        if not isinstance(self.decision_key, str) or not self.decision_key.strip():
            raise TypeError("Review(decision_key=...) must be a non-empty context key name")
        if isinstance(self.max_revisions, bool) or not isinstance(self.max_revisions, int) or self.max_revisions < 0:
            raise ValueError("Review(max_revisions=...) must be a whole number, 0 or more")
        if self.schema is not None:
            from jsonschema.validators import validator_for

            validator_for(self.schema).check_schema(self.schema)
        self._check_title()
        self._check_summary()
        self._check_choices()
        self._check_notify()
        self._check_reminders()

    def _check_reminders(self) -> None:
        for name in ("remind_before", "remind_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, timedelta) or value.total_seconds() <= 0):
                raise ValueError(f"Review({name}=...) must be a positive timedelta")
        if self.remind_before is not None and self.timeout is None:
            raise ValueError("Review(remind_before=...) needs a timeout: it counts back from the deadline")

    def _check_notify(self) -> None:
        if self.notify is None:
            return
        from .notifications.notifiers import BaseNotifier, declare

        if isinstance(self.notify, (str, BaseNotifier)) or not isinstance(self.notify, Sequence):
            raise TypeError("Review(notify=...) must be a list of notifiers or notifier names")
        names: list[str] = []
        for item in self.notify:
            if isinstance(item, BaseNotifier):
                declare(item)  # found by its name when a worker sends the checkpoint's notifications
                names.append(item.name)
            elif isinstance(item, str) and item:
                names.append(item)
            else:
                raise TypeError(f"Review(notify=...): {item!r} is neither a notifier nor a notifier's name")
        if len(set(names)) != len(names):
            raise ValueError("Review(notify=...) names the same notifier twice: give each its own name=...")

    def _check_title(self) -> None:
        if callable(self.title):
            return
        if not isinstance(self.title, str):
            raise TypeError("Review(title=...) must be a string (a format string over the context) or a callable")
        try:
            fields = [
                name for _text, name, _spec, _conversion in string.Formatter().parse(self.title) if name is not None
            ]
        except ValueError as exc:
            raise ValueError(
                f"Review(title={self.title!r}) is not a valid format string: {exc} (write {{{{ for a brace)"
            ) from None
        for name in fields:
            if not name or name.split(".")[0].split("[")[0].isdigit():
                raise ValueError(f"Review(title={self.title!r}): each {{...}} must name a context key, e.g. {{payee}}")

    def _check_summary(self) -> None:
        if self.summary is None or callable(self.summary):
            return
        if isinstance(self.summary, str) or not all(isinstance(key, str) for key in self.summary):
            raise TypeError("Review(summary=...) must be a list of context key names or a callable")
        if len(self.summary) > MAX_SUMMARY_ITEMS:
            raise ValueError(f"Review(summary=...) names more than {MAX_SUMMARY_ITEMS} keys: keep it short")

    def _check_choices(self) -> None:
        if not isinstance(self.multiple, bool):
            raise TypeError("Review(multiple=...) must be True or False")
        if not isinstance(self.choice_key, str) or not self.choice_key.strip():
            raise TypeError("Review(choice_key=...) must be a non-empty string (the context key of the choice)")
        if self.choices is None:
            if self.multiple:
                raise ValueError("Review(multiple=True) needs choices=...")
            return
        if not isinstance(self.choices, Mapping) or not self.choices:
            raise TypeError(
                'Review(choices=...) must be a non-empty mapping of keys to labels, e.g. {"publish": "Publish"}'
            )
        for key, label in self.choices.items():
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"Review(choices=...): each key must be a non-empty string, got {key!r}")
            if not isinstance(label, (str, Promise)) or not str(label).strip():
                raise TypeError(f"Review(choices=...): the label of {key!r} must be a non-empty string, got {label!r}")
        if self.editable is not None and self.choice_key in self.editable:
            raise ValueError(
                f"Review(choice_key={self.choice_key!r}) is also in editable: a choice is picked, not typed"
            )
        if self.on_timeout == "approve":
            raise ValueError(
                'Review(choices=...) cannot be approved on timeout: nobody would choose (on_timeout="approve")'
            )

    def render_title(self, context: Mapping[str, Any], pipeline: str, step: str) -> str:
        """The checkpoint's title for ``context``: on one line, at most :data:`MAX_TITLE_LENGTH` characters.

        Raises :class:`ReviewMisconfigured` naming the step and the key when the format string names a key
        the context does not have, or when the callable raises or returns something other than a string.
        Without a title (or when it renders empty): :func:`default_title`.
        """
        if callable(self.title):
            try:
                value = self.title(dict(context))
            except Exception as exc:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its title function raised {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(value, str):
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its title function returned {type(value).__name__}, not a string"
                )
        elif "{" in self.title or "}" in self.title:
            try:
                value = self.title.format_map(context)
            except KeyError as exc:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its title {self.title!r} names the key {exc.args[0]!r}, "
                    f"which the context does not have (it has {_keys(context)})"
                ) from None
            except (AttributeError, IndexError, TypeError, ValueError) as exc:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its title {self.title!r} cannot be filled in from the context: {exc}"
                ) from None
        else:
            value = self.title
        return _clip(" ".join(value.split()), MAX_TITLE_LENGTH) or default_title(pipeline, step)

    def _check_approvals_required(self) -> None:
        required = self.approvals_required
        if isinstance(required, Mapping):
            if not required:
                raise ValueError("Review(approvals_required={...}) needs at least one group")
            for name, count in required.items():
                if not isinstance(name, str) or not name.strip():
                    raise TypeError(f"Review(approvals_required=...): {name!r} is not a group name")
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    raise ValueError(
                        f"Review(approvals_required=...): group {name!r} needs a whole number of approvals, "
                        f"at least 1 (got {count!r})"
                    )
            if self.assign_to_group is not None:
                # The item goes to the groups whose approvals it needs; other groups could not complete it.
                raise ValueError(
                    "Review(assign_to_group=...) cannot be combined with approvals from named groups: the item "
                    "is assigned to those groups (and to assign_to_user, whose users must be members)"
                )
            if self.on_timeout == "escalate":
                # The escalation group's members could not count toward any group: nobody could approve it.
                raise ValueError(
                    'Review(on_timeout="escalate") cannot be combined with approvals from named groups: '
                    "only members of those groups can approve"
                )
            return
        if isinstance(required, bool) or not isinstance(required, int):
            raise TypeError("Review(approvals_required=...) must be an integer or a mapping of group names to integers")
        if required < 1:
            raise ValueError("Review(approvals_required=...) must be at least 1")

    @property
    def quorum_groups(self) -> list[str]:
        """The groups of a per-group quorum, in the order declared; ``[]`` for a plain count."""
        required = self.approvals_required
        return list(required) if isinstance(required, Mapping) else []

    @property
    def total_approvals(self) -> int:
        """How many distinct approvals decide a checkpoint (the sum of a per-group quorum's counts)."""
        required = self.approvals_required
        return sum(required.values()) if isinstance(required, Mapping) else required

    def render_summary(self, context: Mapping[str, Any], step: str) -> dict[str, str]:
        """The checkpoint's summary for ``context``: labels to values, both strings, at most
        :data:`MAX_SUMMARY_ITEMS` of them; ``{}`` without a summary.

        Key names become labels (``"invoice_no"`` → ``"Invoice no"``). Raises :class:`ReviewMisconfigured`
        naming the step and the key when a key is missing from the context, or when the callable raises,
        returns something other than a mapping, or a mapping with a label that is not a string or too many.
        """
        if self.summary is None:
            return {}
        if callable(self.summary):
            try:
                returned = self.summary(dict(context))
            except Exception as exc:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its summary function raised {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(returned, Mapping):
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its summary function returned {type(returned).__name__}, "
                    "not a mapping of labels to values"
                )
            items = list(returned.items())
            for label, _value in items:
                if not isinstance(label, str):
                    raise ReviewMisconfigured(
                        f"Review of step {step!r}: its summary function returned the label {label!r}, not a string"
                    )
            if len(items) > MAX_SUMMARY_ITEMS:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its summary function returned {len(items)} entries; "
                    f"at most {MAX_SUMMARY_ITEMS} fit on a row of the queue"
                )
        else:
            missing = [key for key in self.summary if key not in context]
            if missing:
                raise ReviewMisconfigured(
                    f"Review of step {step!r}: its summary names the key(s) {', '.join(map(repr, missing))}, "
                    f"which the context does not have (it has {_keys(context)})"
                )
            items = [(_humanise(key), context[key]) for key in self.summary]
        summary: dict[str, str] = {}
        for label, value in items:
            summary[_clip(" ".join(label.split()), MAX_LABEL_LENGTH)] = _clip(_as_text(value), MAX_VALUE_LENGTH)
        return summary

    def snapshot(self) -> dict[str, Any]:
        """The settings stored on each checkpoint, so a decision follows the rules it was created under."""
        from .conf import settings

        return {
            "editable": list(self.editable) if self.editable is not None else None,
            "schema": self.schema,
            "permission": self.permission or settings.DEFAULT_REVIEW_PERMISSION,
            "approvals_required": self.total_approvals,
            # A list, not a mapping, for the order (jsonb keeps none); None for a plain count.
            "approvals_by_group": [
                {"group": name, "required": count} for name, count in self.approvals_required.items()
            ]
            if isinstance(self.approvals_required, Mapping)
            else None,
            "allow_self_approval": self.allow_self_approval,
            "timeout_seconds": self.timeout.total_seconds() if self.timeout else None,
            "on_timeout": self.on_timeout,
            "escalate_to_group": self.escalate_to_group,
            "title": self.title if isinstance(self.title, str) else "",
            "summary": list(self.summary) if self.summary is not None and not callable(self.summary) else None,
            "require_reject_reason": self.require_reject_reason,
            # A list, not a mapping: PostgreSQL's jsonb does not keep the order of an object's keys. Labels
            # are stored untranslated (a lazy label as its source text) and translated when shown.
            "choices": [{"key": key, "label": _source(label)} for key, label in self.choices.items()]
            if self.choices
            else None,
            "choice_key": self.choice_key if self.choices else None,
            "multiple": self.multiple,
            "decision_key": self.decision_key,
            "max_revisions": self.max_revisions,
            "notify": self.notify_names(),
            "remind_before_seconds": self.remind_before.total_seconds() if self.remind_before else None,
            "remind_every_seconds": self.remind_every.total_seconds() if self.remind_every else None,
            "email_actions": self.email_actions,
        }

    def notify_names(self) -> list[str] | None:
        """The names of the notifiers of ``notify`` (stored with each checkpoint), or None for the defaults."""
        if self.notify is None:
            return None
        return [item if isinstance(item, str) else str(item.name) for item in self.notify]


def default_title(pipeline: str, step: str) -> str:
    """The title of a checkpoint whose ``Review`` has none: the pipeline and the step, humanised.

    ``default_title("payment-approval", "check")`` is ``"Payment approval: check"``; a nested step keeps
    its path (``"Content moderation: route / suspicious / hold"``).
    """
    where = " / ".join(_humanise(part).lower() for part in step.split("/") if part)
    return _clip(f"{_humanise(pipeline)}: {where}" if where else _humanise(pipeline), MAX_TITLE_LENGTH)


def _source(label: str | Promise) -> str:
    from django.utils import translation

    with translation.override(None):  # a gettext_lazy label as written, in the source language
        return str(label)


def _humanise(name: str) -> str:
    words = " ".join(name.replace("_", " ").replace("-", " ").split())
    return words[:1].upper() + words[1:]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(value)


def _keys(context: Mapping[str, Any]) -> str:
    keys = sorted(map(str, context))
    shown = ", ".join(map(repr, keys[:10])) + (", …" if len(keys) > 10 else "")
    return shown or "no keys"


def _validate(value: Any) -> Review | None:
    if value is not None and not isinstance(value, Review):
        raise TypeError(f"review= takes a Review(...), got {value!r}")
    return value


register_step_option("review", _validate)
