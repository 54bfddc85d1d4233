"""A purge batch: a few statements whatever its size, each run's ``purged`` event chained from its head, as
one written alone would be."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from stepkit_django import audit, chain, integrity, retention
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.status import AuditAction, RunStatus
from tests.audit.test_chain import assert_chained
from tests.runs.test_retention import NOW, ended_run

CUTOFF = NOW - timedelta(days=90)


def links_after_a_purge(run, verify=True):
    """The run's links recomputed from its events as stored (a purge leaves their digests), checked against
    theirs and the run's head; and ``stepkit_verify``'s verdict on the run (a trail starts with ``run_started``:
    not for a run made without one)."""
    key, previous, links = chain.signing_key(), None, []
    for event in AuditEvent.objects.filter(run=run).order_by("pk"):
        fields = {"checkpoint": event.checkpoint_id, "pipeline_name": event.pipeline_name, "actor": event.actor_id}
        text = chain.message(
            run=run.pk,
            action=event.action,
            timestamp=event.timestamp,
            note=event.note,
            data=event.data,
            data_digest=bytes(event.data_digest),
            **fields,
        )
        previous = chain.link(key, previous, text)
        assert bytes(event.chain) == previous, f"event {event.pk} ({event.action})"
        links.append(previous)
    assert bytes(PipelineRun.objects.get(pk=run.pk).audit_head) == previous
    if verify:
        report = integrity.verify(run)
        assert report.ok and report.chained == len(links), report.problems
    return links


def _statements_of_one_batch(runs):
    for i in range(runs):
        ended_run(days_ago=100 + i)
    with CaptureQueriesContext(connection) as captured:
        done = retention.purge(CUTOFF, batch_size=runs)
    assert done == {"runs": runs, "checkpoints": runs, "events": 3 * runs, "batches": 1}
    return len(captured)


@pytest.mark.django_db
def test_a_batch_costs_the_same_few_statements_whatever_its_size():
    five, fifty = _statements_of_one_batch(5), _statements_of_one_batch(50)
    assert five == fifty
    # the batch's runs found, then locked; checkpoints and notifications emptied, the checkpoints counted; the
    # events read and their data rewritten (the purge's flag set, then cleared); the purged events inserted; the
    # runs emptied and their heads moved; the search for a next batch, which finds none; and here the savepoint
    # of the batch's transaction and its release (the test runs in a transaction)
    assert fifty <= 14


@pytest.mark.django_db
def test_each_purged_event_is_chained_from_its_runs_head_and_moves_it(people):
    runs = [ended_run(actor=people.bob) for _ in range(3)]
    bare = PipelineRun.objects.create(pipeline_name="kept-data", status=RunStatus.FAILED, finished_at=CUTOFF)
    links = {run.pk: assert_chained(run) for run in runs}
    before = {row["id"]: row for row in PipelineRun.objects.values()}
    assert retention.purge(CUTOFF + timedelta(seconds=1), now=NOW)["runs"] == 4
    emptied = {"input": {}, "context": {}, "outer_contexts": [], "error": "", "traceback": "", "purged_at": NOW}
    for row in PipelineRun.objects.values():  # the rest of the row as it was; the head moved to the purged event
        was = {**before[row["id"]], **emptied, "audit_head": row["audit_head"]}
        assert row == was
        purged = AuditEvent.objects.get(run=row["id"], action=AuditAction.PURGED)
        assert bytes(row["audit_head"]) == bytes(purged.chain)
    for run in runs:
        after = links_after_a_purge(run)
        assert after[:3] == links[run.pk]  # the purge rewrites data, never a link
        purged = run.events.get(action=AuditAction.PURGED)
        assert bytes(purged.chain) == after[3]
    [purged] = bare.events.all()  # a run without events: its purged event starts its chain
    assert purged.data == {
        "why": "retention",
        "cutoff": (CUTOFF + timedelta(seconds=1)).isoformat(),
        "removed": list(retention.REMOVED),
        "checkpoints": 0,
        "events": 0,
    }
    assert len(links_after_a_purge(bare, verify=False)) == 1


@pytest.mark.django_db
def test_the_purged_events_are_as_record_writes_them_signals_included(people):
    run, other = ended_run(days_ago=1), ended_run(days_ago=1)
    sent = []

    def seen(sender, instance, **kwargs):
        if instance.action == AuditAction.PURGED:
            sent.append((kwargs["signal"], instance.pk, kwargs.get("created")))

    pre_save.connect(seen, sender=AuditEvent)
    post_save.connect(seen, sender=AuditEvent)
    try:
        with audit.via("admin-erasure"):
            retention.erase(run, by=people.root)
        retention.purge(NOW)
    finally:
        pre_save.disconnect(seen, sender=AuditEvent)
        post_save.disconnect(seen, sender=AuditEvent)
    erased, purged = run.events.get(action=AuditAction.PURGED), other.events.get(action=AuditAction.PURGED)
    assert sent == [
        (pre_save, None, None),
        (post_save, erased.pk, True),
        (pre_save, None, None),
        (post_save, purged.pk, True),
    ]
    assert erased.actor == people.root and erased.data["via"] == "admin-erasure"  # as audit.record says it
    assert erased.data["why"] == "erasure" and (erased.data["checkpoints"], erased.data["events"]) == (1, 3)
    assert purged.actor is None and "via" not in purged.data
    for each in (run, other):
        links_after_a_purge(each)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_purge_waits_for_a_writer_holding_a_run_and_chains_after_its_event():
    """The batch reads its runs' heads as it locks them: a writer that holds a run's lock and moves its head
    makes the purge wait, and the purged event follows the writer's."""
    run = ended_run()
    holding, release, errors, done = threading.Event(), threading.Event(), [], {}

    def writer():
        try:
            with transaction.atomic():
                audit.record(PipelineRun.objects.get(pk=run.pk), AuditAction.EDITED, data={"note": "meanwhile"})
                holding.set()
                release.wait(10)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def purger():
        try:
            done.update(retention.purge(CUTOFF))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer), threading.Thread(target=purger)]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    time.sleep(0.3)
    assert threads[1].is_alive()  # waiting for the run's lock
    release.set()
    for thread in threads:
        thread.join(30)
    assert errors == [] and done["runs"] == 1 and done["events"] == 4
    actions = list(run.events.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == [AuditAction.EDITED, AuditAction.PURGED]
    assert len(links_after_a_purge(run)) == 5


@pytest.mark.django_db
def test_a_receiver_of_the_purged_event_sees_its_run_emptied_and_appends_after_it():
    """A receiver of the ``purged`` event's ``post_save`` sees its run emptied and its head on the event (as when
    each event was recorded alone): what it reads of the run is no longer the erased data, and an event it
    appends (``audit.record``, in the purge's transaction) follows the purged one instead of forking the chain."""
    run = ended_run()
    seen = []

    def follow_up(sender, instance, created, **kwargs):
        if created and instance.action == AuditAction.PURGED:
            stored = PipelineRun.objects.get(pk=instance.run_id)
            seen.append((stored.input, stored.context, stored.purged_at is not None))
            assert bytes(stored.audit_head) == bytes(instance.chain)
            audit.record(instance.run, AuditAction.EDITED, data={"follow": "up"})

    post_save.connect(follow_up, sender=AuditEvent, dispatch_uid="test-follow-up")
    try:
        retention.purge(CUTOFF)
    finally:
        post_save.disconnect(sender=AuditEvent, dispatch_uid="test-follow-up")
    assert seen == [({}, {}, True)]
    actions = list(AuditEvent.objects.filter(run=run).order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == [AuditAction.PURGED, AuditAction.EDITED]
    report = integrity.verify(PipelineRun.objects.get(pk=run.pk))
    assert report.ok, [str(problem) for problem in report.problems]
