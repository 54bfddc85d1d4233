from django.db import models


class SideEffect(models.Model):
    """One row per execution of a step that has an effect outside the pipeline (e.g. sending an email)."""

    kind = models.CharField(max_length=50)
    key = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)

    class Meta:
        app_label = "testapp"

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"
