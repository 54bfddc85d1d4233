from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StepkitConfig(AppConfig):
    name = "stepkit_django"
    label = "stepkit_django"
    verbose_name = _("Stepkit workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from . import checks, signal_handlers  # noqa: F401  (register checks, connect receivers)
        from .telemetry import metrics

        autodiscover_modules("pipelines")
        # The pending and overdue gauges, reported from a process's first collection (a web process
        # just restarted has recorded nothing yet); nothing without opentelemetry-api.
        metrics.register_gauges()
