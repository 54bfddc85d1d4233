"""The pending and overdue gauges: reported from a process's first collection, before anything happened
in it; both counted on one connection per collection, in a savepoint inside the caller's transaction."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.utils import timezone
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from stepkit_django import Review, start, stepkit, telemetry
from stepkit_django.models import Checkpoint, PipelineRun
from tests.processes import ROOT

from .conftest import Recorded, attrs

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT = attrs(pipeline="reviewed", step="draft")


@pytest.fixture
def pipelines(registered_pipelines):
    registered_pipelines(
        stepkit("reviewed")
        .step("draft", lambda c: {"text": "hi"}, review=Review(timeout=timedelta(hours=1)))
        .step("send", lambda c: {})
    )


def test_a_provider_reports_the_gauges_from_its_first_collection_before_anything_is_recorded(pipelines, people):
    start("reviewed", {}, user=people.alice)  # before this process had a provider: as before a restart
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry.use(meter_provider=provider)  # nothing started, decided or executed since
    try:
        recorded = Recorded(None, reader, None)
        assert recorded.values("stepkit.checkpoints.pending") == {DRAFT: 1}
        assert recorded.values("stepkit.checkpoints.overdue") == {}
    finally:
        telemetry.use()
        provider.shutdown()


# A process of its own: OpenTelemetry's global provider can be set once per process.
FRESH_PROCESS = """
import sys
from datetime import timedelta

def set_provider():
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader

when = sys.argv[1]
reader = set_provider() if when == "settings" else None  # as settings.py would
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from stepkit_django.models import Checkpoint, PipelineRun
run = PipelineRun.objects.create(pipeline_name="reviewed", status="paused", current_step="draft")
Checkpoint.objects.create(run=run, pipeline_name="reviewed", step="draft", status="pending")
if when == "after-ready":  # a gunicorn post_fork hook, the project's AppConfig.ready()
    reader = set_provider()
data = reader.get_metrics_data()
names = {m.name: [p.value for p in m.data.data_points] for r in data.resource_metrics for s in r.scope_metrics
         for m in s.metrics} if data else {}
print(names.get("stepkit.checkpoints.pending"))
"""


@pytest.mark.parametrize("when", ["settings", "after-ready"])
def test_a_process_that_recorded_nothing_reports_the_pending_gauge_of_the_global_provider(when):
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": "sqlite:///:memory:", "PATH": ""}
    command = [sys.executable, "-c", FRESH_PROCESS, when]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "[1]", result.stderr


@pytest.mark.postgres  # Django never closes SQLite's in-memory test database
def test_a_collection_in_a_thread_of_its_own_opens_one_connection_for_both_gauges_and_closes_it(
    otel, pipelines, people
):
    start("reviewed", {}, user=people.alice)
    opened = []
    seen: dict[str, object] = {}

    def count(sender, connection, **kwargs):
        opened.append(threading.get_ident())

    def collect():  # as the Prometheus exporter's HTTP thread does on a scrape
        found = otel.metrics()
        seen["gauges"] = {name: len(points) for name, points in found.items() if "pending" in name or "overdue" in name}
        seen["open"] = connection.connection is not None

    connection_created.connect(count)
    try:
        thread = threading.Thread(target=collect)
        thread.start()
        thread.join()
    finally:
        connection_created.disconnect(count)
    assert seen == {"gauges": {"stepkit.checkpoints.pending": 1}, "open": False}
    assert len(opened) == 1


def test_a_gauge_query_that_fails_inside_the_caller_s_transaction_leaves_it_usable(otel, pipelines, people):
    run = start("reviewed", {}, user=people.alice)
    table = Checkpoint._meta.db_table

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():  # a request's transaction (ATOMIC_REQUESTS)
        with connection.cursor() as cursor:  # the gauges' query now fails: no such table
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_elsewhere")
        assert otel.values("stepkit.checkpoints.pending") == {}  # logged, and nothing reported
        # PostgreSQL would refuse every statement of an aborted transaction: the savepoint spared it.
        assert PipelineRun.objects.filter(pk=run.pk).exists()
        raise Undo
    assert otel.values("stepkit.checkpoints.pending") == {DRAFT: 1}


def test_a_gauge_inside_a_transaction_counts_in_a_savepoint(otel, pipelines, people, django_assert_num_queries):
    start("reviewed", {}, user=people.alice)
    Checkpoint.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with transaction.atomic(), django_assert_num_queries(4):  # SAVEPOINT, the two counts, RELEASE
        assert otel.values("stepkit.checkpoints.overdue") == {DRAFT: 1}
