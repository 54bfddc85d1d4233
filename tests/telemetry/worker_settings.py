"""The test settings for a worker process whose spans a test reads: OpenTelemetry's SDK as the global
tracer provider, each span written to ``STEPKIT_SPANS_FILE`` as it ends."""

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.settings import *  # noqa: F403
from tests.telemetry.spans_file import JsonLinesSpanExporter

_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(os.environ["STEPKIT_SPANS_FILE"])))
trace.set_tracer_provider(_provider)
