"""OpenTelemetry's SDK for the telemetry tests: in-memory span and metric exporters, handed to
``stepkit_django.telemetry.use()`` (the global providers can be set only once per process, and the rest
of the suite must keep running with none)."""

from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stepkit_django import telemetry


@dataclass
class Recorded:
    """What the SDK recorded during a test: ``spans()`` (finished), ``points(name)`` (metric data points)."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        """Every metric's data points by name (collected now: the gauges run their query here)."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def values(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """``name``'s value per attribute set (sorted items): a sum or a gauge's value, a histogram's
        ``(count, sum)``."""
        points = self.metrics().get(name, [])
        return {
            tuple(sorted(p.attributes.items())): (p.count, p.sum) if isinstance(p, HistogramDataPoint) else p.value
            for p in points
        }


@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.use(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(exporter, reader, tracer_provider)
    finally:
        telemetry.use()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def attrs(**items: Any) -> tuple[tuple[str, Any], ...]:
    """An attribute set as ``Recorded.values`` keys it: ``attrs(pipeline="p", step="s")``, stepkit's names."""
    names = {"pipeline": "stepkit.pipeline", "step": "stepkit.step", "outcome": "stepkit.decision.outcome"}
    return tuple(sorted((names.get(k, k), v) for k, v in items.items()))
