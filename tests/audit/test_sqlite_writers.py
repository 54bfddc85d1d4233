"""Concurrent writers of one run's trail on a SQLite file: each takes the database's write lock before it
reads the run's head, so none fails with "database is locked" (the read-then-upgrade deadlock) and the
chain stays one. Run with ``DATABASE_URL=sqlite:////tmp/some.sqlite3``: an in-memory test database locks
tables through its shared cache instead."""

import threading

import pytest
from django.db import OperationalError, connection, connections

from stepkit_django import audit, integrity
from stepkit_django.models import PipelineRun
from stepkit_django.status import AuditAction
from tests.review.test_review import paused_email

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite" or connection.settings_dict["TEST"].get("NAME") is None,
    reason="needs a SQLite file database (DATABASE_URL=sqlite:////path)",
)


@pytest.mark.django_db(transaction=True)
def test_concurrent_orm_writers_on_a_sqlite_file_all_succeed(people):
    run, _ = paused_email(people)
    errors: list[str] = []
    written = []

    def write() -> None:
        try:
            for index in range(20):
                try:
                    audit.record(PipelineRun.objects.get(pk=run.pk), AuditAction.EDITED, data={"i": index})
                    written.append(index)
                except OperationalError as error:
                    errors.append(str(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(written) == 80
    report = integrity.verify(run)
    assert report.ok, report.problems
