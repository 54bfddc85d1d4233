"""A span exporter that appends each finished span to a file as one JSON line, for worker processes whose
spans a test reads back (``worker_settings`` sets it up from ``STEPKIT_SPANS_FILE``)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class JsonLinesSpanExporter(SpanExporter):
    """Appends ``name``, ids, parent, links and attributes of each span to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a") as out:
            for span in spans:
                out.write(json.dumps(describe(span)) + "\n")
        return SpanExportResult.SUCCESS


def describe(span: ReadableSpan) -> dict[str, Any]:
    """A span as plain data: trace and span ids in hex, as W3C ``traceparent`` writes them."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [
            {"trace_id": f"{x.context.trace_id:032x}", "span_id": f"{x.context.span_id:016x}"} for x in span.links
        ],
        "attributes": dict(span.attributes or {}),
        "kind": span.kind.name,
    }


def read(path: Path) -> list[dict[str, Any]]:
    """The spans written to ``path`` so far."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
