"""OpenTelemetry metrics and traces of runs, steps and decisions (optional: ``pip install stepkit-django[otel]``).

Recorded through the OpenTelemetry API (``opentelemetry-api``) with the providers the host configures
(``opentelemetry-sdk``, an exporter): :mod:`.metrics` (counters, histograms, the pending and overdue
gauges) and :mod:`.tracing` (a span per run advance, per step, per decision, and the trace context sent
with a run's id to its worker). ``STEPKIT["TELEMETRY"] = False`` turns it all off; without the API, or
until an SDK provider is set, nothing is recorded and the runner's hot path is unchanged.
"""

from .api import AVAILABLE, use

__all__ = ["AVAILABLE", "use"]
