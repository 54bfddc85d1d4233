"""``stepkit_verify`` and ``integrity.verify``: a clean trail passes, a change or a removal made around
stepkit (raw SQL with the triggers out of the way) is caught, a purge and an erasure still pass."""

import io
import warnings
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from stepkit_django import audit, integrity, retention, review
from stepkit_django.models import AuditEvent, AuditTrailImmutable, PipelineRun
from stepkit_django.status import AuditAction, RunStatus
from tests.review.test_review import paused_email

from .tampering import RUNS, TABLE, key, tamper

pytestmark = pytest.mark.django_db


def decided(people):
    """A completed run with a claim, an edit and an approval in its trail."""
    run, cp = paused_email(people)
    review.claim(cp, people.bob)
    review.edit(cp, people.bob, {"subject": "Edited subject"})
    review.approve(cp, people.bob, comment="ok")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return run


def problems(run=None):
    return [(p.event, p.kind) for p in integrity.verify(run).problems]


def events(run):
    return list(run.events.order_by("pk"))


def test_a_clean_trail_passes_and_the_command_says_so(people):
    run = decided(people)
    report = integrity.verify()
    assert report.ok and report.runs == 1 and report.chained == report.events == run.events.count()
    out = io.StringIO()
    call_command("stepkit_verify", stdout=out)
    assert "No problem found." in out.getvalue()


def test_a_value_changed_in_the_data_is_caught(people):
    run = decided(people)
    edited = run.events.get(action="edited")
    changed = {**edited.data, "changes": {"subject": {"before": "x", "after": "Forged"}}}
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json(changed), edited.pk])
    assert problems(run) == [(edited.pk, "data_changed")]


def test_a_kept_field_changed_is_caught(people):
    run = decided(people)
    approved = run.events.get(action="approved")
    tamper(f"UPDATE {TABLE} SET note = 'rewritten' WHERE id = %s", [approved.pk])
    assert problems(run) == [(approved.pk, "changed")]
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 problem found in 1 run"):
        call_command("stepkit_verify", "--run", str(run.pk), stdout=out)
    assert f"Event {approved.pk} (approved at" in out.getvalue() and "does not match its chain" in out.getvalue()


def test_an_action_rewritten_with_its_chain_copied_from_another_event_is_caught(people):
    run = decided(people)
    claimed, approved = run.events.get(action="claimed"), run.events.get(action="approved")
    tamper(f"UPDATE {TABLE} SET action = 'rejected' WHERE id = %s", [approved.pk])
    tamper(
        f"UPDATE {TABLE} SET chain = (SELECT chain FROM {TABLE} WHERE id = %s) WHERE id = %s", [claimed.pk, approved.pk]
    )
    assert (approved.pk, "changed") in problems(run)


def test_a_deleted_event_in_the_middle_is_caught_at_the_next_one(people):
    run = decided(people)
    trail = events(run)
    middle, after = trail[3], trail[4]
    tamper(f"DELETE FROM {TABLE} WHERE id = %s", [middle.pk])
    assert problems(run) == [(after.pk, "changed")]


def test_a_deleted_last_event_is_caught_by_the_head(people):
    run = decided(people)
    tamper(f"DELETE FROM {TABLE} WHERE id = %s", [events(run)[-1].pk])
    assert problems(run) == [(None, "truncated")]


def test_a_trail_deleted_whole_is_caught_even_without_its_head(people):
    run = decided(people)
    tamper(f"DELETE FROM {TABLE} WHERE run_id = %s", [key(run)])
    assert problems(run) == [(None, "unstarted")]
    tamper(f"UPDATE {RUNS} SET audit_head = NULL WHERE id = %s", [key(run)])
    assert problems(run) == [(None, "unstarted")]


def test_data_redacted_without_a_purge_is_caught(people):
    run = decided(people)
    started = run.events.get(action="run_started")
    redacted = retention.redacted_data(started.action, started.data)
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json(redacted), started.pk])
    assert problems(run) == [(started.pk, "redacted")]


def test_a_purge_and_an_erasure_still_verify(people):
    old, recent = decided(people), decided(people)
    PipelineRun.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=100))
    assert retention.purge(timezone.now() - timedelta(days=90))["runs"] == 1
    retention.erase(recent, by=people.root)
    for run in (old, recent):
        assert all(e.data.get("purged") for e in run.events.exclude(action=AuditAction.PURGED))
        assert run.events.filter(action=AuditAction.PURGED).count() == 1
    assert problems() == []


def test_a_change_after_a_purge_is_still_caught(people):
    run = decided(people)
    retention.erase(run)
    edited = run.events.get(action="edited")
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json({**edited.data, "step": "other"}), edited.pk])
    assert problems(run) == [(edited.pk, "changed")]


def test_the_purge_cannot_change_the_chain_columns(people):
    run = decided(people)
    with transaction.atomic(), connection.cursor() as cursor:
        retention._allow(cursor, True)
        for column in ("chain", "data_digest"):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(f"UPDATE {TABLE} SET {column} = NULL WHERE run_id = %s", [key(run)])
        retention._allow(cursor, False)
    assert problems(run) == []


def test_a_changed_secret_key_is_reported_and_its_fallback_verifies(people, settings):
    run = decided(people)
    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[]):
        assert problems(run) == [(None, "key")]
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[old]):
        assert problems(run) == []
        cp = run.checkpoints.get()
        audit.record(run, AuditAction.EDITED, checkpoint=cp, data={"after": "rotation"})  # chained with the new key
        assert problems(run) == []


def test_an_unchained_event_before_the_chain_is_caught(people):
    """A forged event given an id below the run_started's: every event has a chain since migration 0017."""
    run = decided(people)
    first = run.events.order_by("pk").first()
    tamper(
        f"INSERT INTO {TABLE} (id, run_id, pipeline_name, action, actor_id, timestamp, data, note)"
        " VALUES (-5, %s, %s, 'approved', %s, %s, %s, 'forged approval')",
        [key(run), first.pipeline_name, people.alice.pk, first.timestamp, _json({"comment": "forged"})],
    )
    assert problems(run) == [(None, "unstarted"), (-5, "unchained")]


def test_a_trail_stripped_of_its_chains_and_head_is_caught(people):
    run = decided(people)
    count = run.events.count()
    tamper(f"UPDATE {TABLE} SET chain = NULL, data_digest = NULL, note = 'rewritten' WHERE run_id = %s", [key(run)])
    tamper(f"UPDATE {RUNS} SET audit_head = NULL WHERE id = %s", [key(run)])
    found = problems(run)
    assert found[0] == (None, "unstarted") and [kind for _, kind in found[1:]] == ["unchained"] * count
    assert "without a chain" in integrity.verify(run).summary()


def test_data_that_is_not_an_object_is_caught(people):
    run = decided(people)
    event = run.events.filter(data={}).order_by("pk").first()
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json(["forged", "payload"]), event.pk])
    assert problems(run) == [(event.pk, "data_changed")]


def test_a_purged_key_added_to_data_the_chain_covers_whole_is_caught(people):
    run = decided(people)
    event = next(e for e in run.events.order_by("pk") if not e.data_digest)
    forged = {**event.data, "purged": "Bob never approved this"}
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json(forged), event.pk])
    assert problems(run) == [(event.pk, "data_changed")]


def test_a_recorded_purged_key_is_covered_by_the_digest(people):
    run = decided(people)
    audit.record(run, AuditAction.EDITED, checkpoint=run.checkpoints.get(), data={"purged": "a value of the user's"})
    event = run.events.order_by("pk").last()
    assert event.data_digest and problems(run) == []
    tamper(f"UPDATE {TABLE} SET data = %s WHERE id = %s", [_json({"purged": "another"}), event.pk])
    assert problems(run) == [(event.pk, "data_changed")]


def test_an_unchained_event_after_chained_ones_is_caught(people):
    run = decided(people)
    insert_unchained(run, "approved")  # an INSERT around stepkit: the triggers allow inserts
    inserted = AuditEvent.objects.filter(run=run).order_by("-pk").first()
    assert problems(run) == [(inserted.pk, "unchained")]


def test_the_command_refuses_an_unknown_run_and_a_bad_batch_size():
    with pytest.raises(CommandError, match="No run has the id"):
        call_command("stepkit_verify", "--run", "not-a-uuid")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("stepkit_verify", "--batch-size", "0")


def test_verify_reads_runs_in_batches(people, django_assert_max_num_queries):
    runs = [decided(people) for _ in range(3)]
    with django_assert_max_num_queries(3 * 2 + 2):  # per batch of one run: its head, its events; then the end
        report = integrity.verify(batch_size=1)
    assert report.ok and report.runs == len(runs)


def insert_unchained(run, action):
    """An event inserted with SQL, without a chain."""
    columns = "run_id, pipeline_name, action, timestamp, data, note"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} ({columns}) VALUES (%s, %s, %s, %s, %s, '')",
            [key(run), run.pipeline_name, action, timezone.now(), "{}"],
        )


def _json(value):
    import json

    return json.dumps(value)


def test_bulk_create_may_not_ignore_conflicts(people):
    """A skipped event would still move the run's head: verify would then report the trail as truncated."""
    run = decided(people)
    first = run.events.order_by("pk").first()
    duplicate = AuditEvent(pk=first.pk, run=run, pipeline_name=run.pipeline_name, action=AuditAction.EDITED, data={})
    with pytest.raises(AuditTrailImmutable, match="ignore_conflicts"):
        AuditEvent.objects.bulk_create([duplicate], ignore_conflicts=True)
    assert problems(run) == []


def test_a_naive_time_is_chained_as_the_database_stores_it(people):
    run = decided(people)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Django's "received a naive datetime"
        naive = datetime(2024, 1, 1, 12, 0)
        AuditEvent(
            run=run, pipeline_name=run.pipeline_name, action=AuditAction.EDITED, data={"x": 1}, timestamp=naive
        ).save()
    assert problems(run) == []


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's timestamptz refuses text")
def test_values_stepkit_never_writes_are_reported_not_raised(people):
    run = decided(people)
    last = run.events.order_by("pk").last()
    tamper(f"UPDATE {TABLE} SET timestamp = 'not a time' WHERE id = %s", [last.pk])
    assert problems(run) == [(last.pk, "unreadable")]
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("stepkit_verify", stdout=out)
    assert "holds values stepkit never writes" in out.getvalue()
