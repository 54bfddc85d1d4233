"""What Prometheus scrapes through OpenTelemetry's Prometheus exporter: the names the how-to lists."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from stepkit_django import Review, review, start, stepkit, telemetry
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

HOW_TO = Path(ROOT) / "docs" / "how-to" / "prometheus-and-tracing.md"


@pytest.fixture
def scrape():
    registry = CollectorRegistry()  # not prometheus_client's global one, which lives as long as the process
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    telemetry.use(meter_provider=provider)
    try:
        yield lambda: generate_latest(registry).decode()
    finally:
        telemetry.use()
        provider.shutdown()


def test_a_scrape_has_every_metric_the_how_to_lists_with_its_labels(scrape, registered_pipelines, people):
    def boom(context):
        raise ValueError("no")

    registered_pipelines(
        stepkit("scraped")
        .step("draft", lambda c: {}, review=Review(timeout=timedelta(hours=1)))
        .step("send", lambda c: {})
    )
    registered_pipelines(stepkit("breaks").step("boom", boom))
    review.approve(start("scraped", {}, user=people.alice).checkpoints.get(), people.bob)
    start("scraped", {}, user=people.alice)  # left pending
    start("breaks", {}, user=people.alice)
    text = scrape()

    def sample(name, value, **labels):
        wanted = "".join(f'(?=[^}}]*stepkit_{k}="{v}")' for k, v in labels.items())
        return re.search(rf"^{name}\{{{wanted}[^}}]*\}} {value}$", text, re.MULTILINE)

    assert sample("stepkit_runs_started_total", "2.0", pipeline="scraped")
    assert sample("stepkit_runs_completed_total", "1.0", pipeline="scraped")
    assert sample("stepkit_runs_failed_total", "1.0", pipeline="breaks")
    assert sample("stepkit_checkpoints_pending", "1.0", pipeline="scraped", step="draft")
    assert sample(
        "stepkit_checkpoints_decided_total", "1.0", pipeline="scraped", step="draft", decision_outcome="approved"
    )
    assert sample("stepkit_step_duration_seconds_count", "2.0", pipeline="scraped", step="draft")
    # The how-to's table: | `OpenTelemetry name` | `Prometheus name` | ...
    listed = set(re.findall(r"^\| `stepkit\.[a-z_.]+` \| `(stepkit_[a-z_]+)` \|", HOW_TO.read_text(), re.MULTILINE))
    exported = set(re.findall(r"^# TYPE (stepkit_[a-z_]+)", text, re.MULTILINE))
    assert exported <= listed  # every metric exported is documented by its Prometheus name
    never_happened = {
        "stepkit_runs_rejected_total",
        "stepkit_runs_cancelled_total",
        "stepkit_notifications_failed_total",
        "stepkit_checkpoints_overdue",
    }
    assert listed - exported == never_happened  # and every one documented is exported once it happened
