"""The chain's key never reaches the database: no statement, no parameter and no log line of a hot-path
write, of its locked fallback, of a decision or of a purge carries the key or its padded forms, so that
neither PostgreSQL's statement log, nor a function shadowing one of its own, nor Django's query log can
give it away."""

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stepkit_django import audit, chain, retention, review, start, stepkit
from stepkit_django.execution.progress import save_step
from stepkit_django.models import PipelineRun
from stepkit_django.status import AuditAction, RunStatus
from tests.review.test_review import paused_email

from .tampering import RUNS

pytestmark = pytest.mark.django_db


def secrets():
    """The key and its RFC 2104 padded forms, as bytes, hex and repr."""
    key = chain.signing_key()
    block = key.ljust(64, b"\x00")
    found = []
    for value in (key, bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)):
        found += [value.hex(), repr(value), repr(memoryview(value).tobytes())]
    return found


def assert_no_key(captured, records):
    texts = [str(q["sql"]) for q in captured] + [repr(r.args) + r.getMessage() for r in records]
    for secret in secrets():
        assert not any(secret in text for text in texts)


def step(run, events):
    now = timezone.now()
    return save_step(
        run, "me", context={}, outer_contexts=[], position=[], step="x", events=events, now=now, lease_until=None
    )


def test_no_key_material_in_queries_or_logs(people, registered_pipelines, caplog, settings):
    settings.DEBUG = True
    registered_pipelines(stepkit("secret-steps").step("a", lambda c: {"a": 1}))
    run = start("secret-steps", {})
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me")
    run.refresh_from_db()
    now = timezone.now()
    with caplog.at_level(logging.DEBUG, logger="django.db.backends"), CaptureQueriesContext(connection) as ctx:
        assert step(run, [("b", 1.0, now)])  # the hot path
        for events in ([("c", 1.0, now)], [("d", 1.0, now), ("e", 2.0, now)]):  # the locked fallback
            audit.record(PipelineRun.objects.get(pk=run.pk), AuditAction.EDITED, data={"by": "someone else"})
            assert step(run, events)
        paused, cp = paused_email(people)
        review.claim(cp, people.bob)
        review.approve(cp, people.bob, comment="ok")  # a decision
        paused.refresh_from_db()
        retention.erase(paused, by=people.root)  # a purge
    assert len(ctx.captured_queries) > 10
    assert_no_key(ctx.captured_queries, caplog.records)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's search_path")
def test_a_shadowed_sha256_sees_nothing(registered_pipelines):
    """A database user who puts their own sha256() first in the search path learns nothing of the key."""
    registered_pipelines(stepkit("secret-shadow").step("a", lambda c: {"a": 1}))
    run = start("secret-shadow", {})
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me")
    run.refresh_from_db()
    with connection.cursor() as c:
        c.execute("CREATE SCHEMA shadow")
        c.execute("CREATE TABLE shadow.loot (arg bytea)")
        c.execute(
            "CREATE FUNCTION shadow.sha256(bytea) RETURNS bytea AS $$ BEGIN INSERT INTO shadow.loot VALUES ($1);"
            " RETURN pg_catalog.sha256($1); END $$ LANGUAGE plpgsql"
        )
        c.execute("SET search_path = shadow, pg_catalog, public")
        c.execute(f"UPDATE {RUNS} SET audit_head = '\\x00'::bytea WHERE id = %s", [run.pk])  # a stale head
    try:
        assert step(run, [("b", 1.0, timezone.now()), ("c", 1.0, timezone.now())])
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM shadow.loot")
            assert c.fetchone()[0] == 0
    finally:
        with connection.cursor() as c:
            c.execute("SET search_path = public")
    assert bytes(PipelineRun.objects.get(pk=run.pk).audit_head) == run.audit_head
