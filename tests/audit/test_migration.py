"""Migration 0017 chains the events written before it, so that every event has a chain afterwards."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from stepkit_django import integrity
from stepkit_django.models import PipelineRun

BEFORE = ("stepkit_django", "0016_queue_indexes")
AFTER = ("stepkit_django", "0017_audit_chain")


@pytest.mark.django_db(transaction=True)
def test_0017_chains_the_events_written_before_it():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("stepkit_django")
    try:
        executor.migrate([BEFORE])
        old = executor.loader.project_state([BEFORE]).apps
        runs = old.get_model("stepkit_django", "PipelineRun")
        events = old.get_model("stepkit_django", "AuditEvent")
        first, second = (runs.objects.create(pipeline_name="p", status="completed") for _ in range(2))
        now = timezone.now()
        for run in (first, second, first):  # interleaved: each run's chain follows its own events
            events.objects.create(run=run, pipeline_name="p", action="run_started", timestamp=now, data={"v": 1})
        events.objects.create(run=first, pipeline_name="p", action="approved", timestamp=now, data={"comment": "x"})

        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        report = integrity.verify()
        assert report.ok, report.problems
        assert report.runs == 2 and report.chained == report.events == 4 and report.unchained == 0
        assert PipelineRun.objects.filter(audit_head__isnull=True).count() == 0
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
