"""The per-step write stays one statement on PostgreSQL; its fallback after another writer (the run's row
locked, the links computed in Python) is a short transaction."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stepkit_django import audit, start, stepkit
from stepkit_django.execution.progress import save_step
from stepkit_django.models import PipelineRun
from stepkit_django.status import AuditAction, RunStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL"),
]


def test_a_step_is_one_statement_and_the_fallback_locks_the_run_first(registered_pipelines):
    registered_pipelines(stepkit("one-statement").step("a", lambda c: {"a": 1}))
    run = start("one-statement", {})
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me")
    run.refresh_from_db()
    now = timezone.now()

    def step() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert save_step(
                run,
                "me",
                context={},
                outer_contexts=[],
                position=[],
                step="x",
                events=[("b", 1.0, now)],
                now=now,
                lease_until=None,
            )
        return [q["sql"] for q in queries.captured_queries]

    assert len(step()) == 1
    audit.record(PipelineRun.objects.get(pk=run.pk), AuditAction.EDITED, data={"by": "someone else"})
    fallback = step()
    assert "FOR NO KEY UPDATE" in fallback[-3] and len(fallback) <= 5  # the failed write, the lock, the write
    assert len(step()) == 1  # the head is known again
