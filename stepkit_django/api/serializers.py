"""Serializers: the shapes of the API. They validate input; decisions go through ``review``."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import permissions, quorum
from ..audit import redacted
from ..describe import remaining_steps
from ..models import Approval, AuditEvent, Checkpoint, PipelineRun
from ..registry import registered
from ..status import RunStatus
from .rows import choices_of, progress_rows, revision_rows


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object (a context, an input, edits, review settings): documented as an object, not as anything."""


class ErrorSerializer(serializers.Serializer[Any]):
    """An error: what went wrong, in words (401, 403, 404, 409, 412, 503)."""

    detail = serializers.CharField(read_only=True)


class ValidationErrorSerializer(serializers.Serializer[Any]):
    """Invalid input (400); its schema is :class:`ValidationErrorSchema`'s."""


VALIDATION_ERROR_DESCRIPTION = (
    'Invalid input: each field mapped to its messages ({"to_users": ["..."]}), nested for the keys of an '
    'object or the indexes of a list ({"override_data": {"subject": ["..."]}}); non_field_errors for the '
    "body as a whole, detail for a body that could not be read."
)


class ValidationErrorSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]  # registers the extension
    """The ``ValidationError`` component: DRF's error bodies, which no serializer field can describe."""

    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        itself = auto_schema.resolve_serializer(self.target, direction).ref  # registered already: no recursion
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": VALIDATION_ERROR_DESCRIPTION,
            "properties": {
                "detail": {"type": "string", "description": "Why the body could not be read."},
                "non_field_errors": {**messages, "description": "Errors of the body as a whole."},
            },
            "additionalProperties": {"anyOf": [messages, itself]},
        }


class UserRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk", read_only=True)
    username = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_username(self, user: Any) -> str:
        return str(user.get_username())


class ApprovalSerializer(serializers.ModelSerializer[Approval]):
    user = UserRefSerializer(read_only=True)
    group = serializers.CharField(
        read_only=True, help_text="With approvals from named groups, the group it counted for; otherwise empty."
    )
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Approval
        fields = ["user", "group", "created_at"]


class GroupProgressSerializer(serializers.Serializer[Any]):
    """Where one group's count of a per-group quorum stands (``Review(approvals_required={...})``)."""

    group = serializers.CharField(read_only=True)
    given = serializers.IntegerField(read_only=True, help_text="Approvals counted for this group so far.")
    required = serializers.IntegerField(read_only=True, help_text="Distinct members of the group who must approve.")  # type: ignore[assignment]
    met = serializers.BooleanField(read_only=True, help_text="The group has given all its approvals.")


class CheckpointSerializer(serializers.ModelSerializer[Checkpoint]):
    """A checkpoint in the queue (list view)."""

    pipeline = serializers.CharField(source="pipeline_name", read_only=True)
    run = serializers.UUIDField(source="run_id", read_only=True)
    assigned_users = UserRefSerializer(many=True, read_only=True)
    assigned_groups: serializers.Field[Any, Any, Any, Any] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="name"
    )
    claimed_by = UserRefSerializer(read_only=True, allow_null=True)
    decided_by = UserRefSerializer(read_only=True, allow_null=True)
    approvals_count = serializers.SerializerMethodField()
    approvals_required = serializers.IntegerField(read_only=True)
    approvals_by_group = serializers.SerializerMethodField(
        help_text="With approvals from named groups, each group's progress in the order declared; otherwise empty."
    )
    title = serializers.CharField(
        read_only=True, help_text="What the item is about, filled in from the context when the run paused."
    )
    summary = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="A few labels and values from the context that tell this item from the next.",
    )

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "run",
            "pipeline",
            "step",
            "title",
            "summary",
            "status",
            "assigned_users",
            "assigned_groups",
            "claimed_by",
            "claimed_at",
            "approvals_count",
            "approvals_required",
            "approvals_by_group",
            "decided_by",
            "decided_at",
            "expires_at",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(GroupProgressSerializer(many=True))
    def get_approvals_by_group(self, obj: Checkpoint) -> list[dict[str, Any]]:
        return progress_rows(quorum.progress_of(obj))

    @extend_schema_field(OpenApiTypes.INT)
    def get_approvals_count(self, obj: Checkpoint) -> int:
        total = getattr(obj, "approvals_total", None)  # annotated on the list
        return int(total) if total is not None else len(obj.approvals.all())


class ChoiceSerializer(serializers.Serializer[Any]):
    """One outcome a reviewer may choose when approving (``Review(choices=...)``)."""

    key = serializers.CharField(read_only=True, help_text="What to send as choice (or in choices) to approve.")
    label = serializers.CharField(read_only=True, help_text="What reviewers see, in the request's language.")  # type: ignore[assignment]


class AnyValueField(serializers.JSONField):
    """Any JSON value, null included (a value of the context)."""


class ValueChangeSerializer(serializers.Serializer[Any]):
    """How one context key changed from a revision to the next."""

    before = AnyValueField(
        read_only=True, help_text="Its value in the data the revision was sent back with; null when it had none."
    )
    after = AnyValueField(
        read_only=True, help_text="Its value when the next revision paused (before any edit); null when it had none."
    )


class RevisionSerializer(serializers.Serializer[Any]):
    """An earlier revision of a checkpoint's step, the changes its reviewer asked for, and what changed next."""

    id = serializers.UUIDField(read_only=True)
    revision = serializers.IntegerField(read_only=True)
    comment = serializers.CharField(read_only=True, help_text="What the reviewer asked to change.")
    decided_by = UserRefSerializer(read_only=True, allow_null=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
    effective_context = JSONObjectField(read_only=True, help_text="The data that revision was sent back with.")
    changes = serializers.DictField(
        child=ValueChangeSerializer(),
        read_only=True,
        help_text=(
            "What changed from this revision's effective_context to the context of the next revision (the "
            "following entry, or this checkpoint for the last one), per key, keys sorted: only the keys whose "
            "values differ, a key absent on one side counting as null; the review's decision key, which the "
            "request for changes wrote, is left out."
        ),
    )


class CheckpointDetailSerializer(CheckpointSerializer):
    """One checkpoint with everything a reviewer needs to decide."""

    revision = serializers.IntegerField(read_only=True, help_text="1 for the first review of this step in the run.")
    revision_of = serializers.UUIDField(
        source="revision_of_id",
        read_only=True,
        allow_null=True,
        help_text="The checkpoint whose reviewer requested the changes this one answers.",
    )
    revisions = serializers.SerializerMethodField(
        help_text=(
            "The earlier revisions of this step in the run that you may see (those you could open yourself), "
            "oldest first; going back from this checkpoint, the list stops at the first you may not see."
        )
    )

    context = JSONObjectField(read_only=True, help_text="The context when the run paused.")  # type: ignore[assignment]
    override_data = JSONObjectField(read_only=True, help_text="Edits saved so far.")
    effective_context = JSONObjectField(read_only=True, help_text="The context the run resumes with.")
    editable = serializers.SerializerMethodField()
    schema = serializers.SerializerMethodField(
        allow_null=True, help_text="The JSON Schema the edited data must match; null when the step has none."
    )
    remaining_steps = serializers.SerializerMethodField()
    approvals = ApprovalSerializer(many=True, read_only=True)
    choices = serializers.SerializerMethodField(
        help_text="The outcomes to choose from when approving, in order; empty when approving needs no choice."
    )
    choice_key = serializers.SerializerMethodField(
        help_text="The context key the choice is written to; null when approving needs no choice."
    )
    multiple_choices = serializers.SerializerMethodField(
        help_text="Several choices may be sent (as choices); otherwise exactly one (as choice)."
    )

    class Meta(CheckpointSerializer.Meta):
        fields = [
            *CheckpointSerializer.Meta.fields,
            "context",
            "override_data",
            "effective_context",
            "editable",
            "schema",
            "remaining_steps",
            "approvals",
            "comment",
            "choices",
            "choice_key",
            "multiple_choices",
            "revision",
            "revision_of",
            "revisions",
        ]
        read_only_fields = fields

    @extend_schema_field(RevisionSerializer(many=True))
    def get_revisions(self, obj: Checkpoint) -> list[dict[str, Any]]:
        # Serializer.context, which the field named context shadows for type checkers (not at run time)
        request = self.root._context.get("request")
        return revision_rows(obj, getattr(request, "user", None))

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_editable(self, obj: Checkpoint) -> list[str] | None:
        return obj.editable_keys

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_schema(self, obj: Checkpoint) -> dict[str, Any] | None:
        schema = obj.review.get("schema")
        return dict(schema) if schema is not None else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_remaining_steps(self, obj: Checkpoint) -> list[str]:
        return remaining_steps(obj.pipeline_name, obj.position)

    @extend_schema_field(ChoiceSerializer(many=True))
    def get_choices(self, obj: Checkpoint) -> list[dict[str, str]]:
        return list(choices_of(obj)["choices"])

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_choice_key(self, obj: Checkpoint) -> str | None:
        value = choices_of(obj)["choice_key"]
        return str(value) if value is not None else None

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_multiple_choices(self, obj: Checkpoint) -> bool:
        return bool(choices_of(obj)["multiple_choices"])


class OverrideField(JSONObjectField):
    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError(gettext("Must be a JSON object of context keys to new values."))
        return value


class ApproveSerializer(serializers.Serializer[Any]):
    override_data = OverrideField(required=False, default=dict, help_text="Edits to merge before resuming.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)
    choice = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=200,
        help_text="The key of the outcome chosen, required when the checkpoint offers choices (see its choices).",
    )
    choices = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        allow_null=True,
        default=None,
        max_length=100,
        help_text="The keys of the outcomes chosen, when the checkpoint lets several be chosen (multiple_choices).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("choice") is not None and attrs.get("choices") is not None:
            raise serializers.ValidationError({"choices": [gettext("Send choice or choices, not both.")]})
        return attrs


class RejectSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)


class RequestChangesSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(
        allow_blank=True, max_length=10_000, help_text="What should change; the steps that run again read it."
    )
    to_step = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        max_length=500,
        help_text="The step to run again from: the reviewed one (default) or an earlier one at its level.",
    )
    override_data = OverrideField(required=False, default=dict, help_text="Edits to merge before running again.")
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)


class EditSerializer(serializers.Serializer[Any]):
    override_data = OverrideField(help_text="Context keys and their new values.")
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)


class VersionSerializer(serializers.Serializer[Any]):
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)


class ReassignSerializer(serializers.Serializer[Any]):
    to_users = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, help_text="Usernames."
    )
    to_groups = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, help_text="Group names."
    )
    expected_version = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Whether the users and groups exist, are active and may review is the service's to say
        # (InvalidAssignment, a 400 with the same fields), as in the admin.
        if not attrs.get("to_users") and not attrs.get("to_groups"):
            raise serializers.ValidationError(gettext("Give to_users and/or to_groups."))
        return attrs


def _user(serializer: serializers.Serializer[Any]) -> Any:
    request = serializer.context.get("request")
    return getattr(request, "user", None)


class RunSerializer(serializers.ModelSerializer[PipelineRun]):
    pipeline = serializers.CharField(source="pipeline_name", read_only=True)
    error = serializers.SerializerMethodField(
        help_text="Why the run failed: the exception's type and message for run managers, the type for others."
    )
    started_by = UserRefSerializer(read_only=True, allow_null=True)
    input = JSONObjectField(read_only=True)
    context = JSONObjectField(read_only=True)  # type: ignore[assignment]
    checkpoints: serializers.Field[Any, Any, Any, Any] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    forked_from = serializers.UUIDField(
        source="forked_from_id",
        read_only=True,
        allow_null=True,
        help_text="The checkpoint this run was re-run from (POST checkpoints/{id}/rerun/); null for a new run.",
    )

    class Meta:
        model = PipelineRun
        fields = [
            "id",
            "pipeline",
            "pipeline_version",
            "status",
            "input",
            "context",
            "current_step",
            "started_by",
            "idempotency_key",
            "error",
            "checkpoints",
            "forked_from",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_error(self, obj: PipelineRun) -> str:
        if not obj.error or permissions.can_see_failure_details(_user(self)):
            return obj.error
        return permissions.error_type(obj.error)


class RerunSerializer(serializers.Serializer[Any]):
    override_data = OverrideField(
        required=False,
        default=None,
        allow_null=True,
        help_text="Edits to the checkpoint's context for the new run, checked as a reviewer's edit of it.",
    )


class RunCreateSerializer(serializers.Serializer[Any]):
    pipeline = serializers.CharField(max_length=200)
    input = OverrideField(required=False, default=dict)
    idempotency_key = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)

    def validate_pipeline(self, value: str) -> str:
        names = registered()
        if value not in names:
            raise serializers.ValidationError(
                gettext("No pipeline named %(name)r is registered. Registered: %(names)s.")
                % {"name": value, "names": ", ".join(names) or gettext("(none)")}
            )
        return value


class RunStatusSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    pipeline = serializers.CharField(source="pipeline_name", read_only=True)
    data = serializers.SerializerMethodField(help_text="Details; a failure's message only for run managers.")  # type: ignore[assignment]
    run = serializers.UUIDField(source="run_id", read_only=True)
    checkpoint = serializers.UUIDField(source="checkpoint_id", read_only=True, allow_null=True)
    actor = UserRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "run", "checkpoint", "pipeline", "action", "actor", "timestamp", "data", "note"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_data(self, obj: AuditEvent) -> dict[str, Any]:
        return redacted(obj.data or {}, full=permissions.can_see_failure_details(_user(self)))


class PipelineStepSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Display path, e.g. route/case/step.")
    kind = serializers.ChoiceField(choices=["step", "branch", "transform"])
    review = JSONObjectField(allow_null=True, help_text="Review settings when the step pauses for review.")


class PipelineSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    version = serializers.IntegerField()
    steps = serializers.ListField(child=serializers.CharField(), help_text="Top-level step names.")
    all_steps = PipelineStepSerializer(many=True, help_text="Every step, nested ones included.")
    input_schema = JSONObjectField(
        allow_null=True, help_text="The JSON Schema a run's input must match (POST runs/); null when it has none."
    )
