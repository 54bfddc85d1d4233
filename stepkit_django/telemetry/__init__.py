"""OpenTelemetry metrics and traces of runs, steps and decisions (optional: ``pip install stepkit-django[otel]``).

Recorded through the OpenTelemetry API (``opentelemetry-api``) with the providers the host configures
(``opentelemetry-sdk``, an exporter): :mod:`.metrics` (counters, histograms, the pending and overdue
gauges) and :mod:`.tracing` (a span per run advance, per step, per decision, and the trace context sent
with a run's id to its worker). ``STEPKIT["TELEMETRY"] = False`` turns it all off; without the API, or
until an SDK provider is set, nothing is recorded and the runner's hot path is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import api, metrics
from .api import AVAILABLE

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["AVAILABLE", "use"]


def use(*, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Record with these providers instead of OpenTelemetry's global ones (None: the global ones again).

    For a host that keeps its providers apart from the global ones, and for tests: the global
    providers can be set only once per process. The gauges are made on ``meter_provider`` right away:
    its first collection reports them.
    """
    api.choose(tracer_provider=tracer_provider, meter_provider=meter_provider)
    metrics.register_gauges()
