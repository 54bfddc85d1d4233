"""The REST API: mount it with ``path("api/stepkit/", include("stepkit_django.api.urls"))``.

drf-spectacular names enums after field names, and runs and checkpoints both have
a ``status``; merge these into ``SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]`` for a
schema without naming warnings.
"""

ENUM_NAME_OVERRIDES = {
    "CheckpointStatusEnum": "stepkit_django.status.CheckpointStatus",
    "RunStatusEnum": "stepkit_django.status.RunStatus",
    "AuditActionEnum": "stepkit_django.status.AuditAction",
}
