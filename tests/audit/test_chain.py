"""Every writer of the audit trail chains its events: the hot path, the decisions, starts and reruns,
pauses, cancellations, retries, the purge; one chain per run even when a decision and a step race."""

import hashlib
import hmac
import threading
import time

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from stepkit_django import Review, audit, chain, integrity, review, start, stepkit
from stepkit_django.execution.jobs import advance_run
from stepkit_django.models import AuditEvent, PipelineRun
from stepkit_django.redaction import redacted_data
from stepkit_django.status import AuditAction, RunStatus
from tests.review.test_review import paused_email

pytestmark = pytest.mark.django_db


def recomputed(run):
    """The run's links recomputed here from its events (the previous link and the kept fields), and its head."""
    run = PipelineRun.objects.get(pk=run.pk)
    key, previous, links = chain.signing_key(), None, []
    for event in AuditEvent.objects.filter(run=run).order_by("pk"):
        text = chain.message(
            run=run.pk,
            checkpoint=event.checkpoint_id,
            pipeline_name=event.pipeline_name,
            action=event.action,
            actor=event.actor_id,
            timestamp=event.timestamp,
            note=event.note,
            data=event.data,
            data_digest=bytes(event.data_digest),
        )
        kept_whole = redacted_data(event.action, event.data) == {**event.data, "purged": True}
        assert bytes(event.data_digest) == (b"" if kept_whole else chain.digest(key, event.data)), event.action
        previous = chain.link(key, previous, text)
        assert bytes(event.chain) == previous, f"event {event.pk} ({event.action})"
        links.append(previous)
    assert bytes(run.audit_head) == previous
    return links


def assert_chained(run):
    links = recomputed(run)
    report = integrity.verify(run)
    assert report.ok, report.problems
    assert report.chained == len(links) and report.unchained == 0
    return links


def test_the_link_is_rfc_2104_hmac_sha256():
    key = chain.derive("secret")
    assert chain.link(key, b"previous", b"message") == hmac.new(key, b"previousmessage", hashlib.sha256).digest()


def test_steps_written_by_the_hot_path_are_chained(registered_pipelines):
    registered_pipelines(
        stepkit("chained-steps")
        .step("a", lambda c: {"a": 1})
        .step("b", lambda c: {"b": 2})
        .step("c", lambda c: {"c": 3})
    )
    run = start("chained-steps", {"n": 0})
    assert run.status == RunStatus.COMPLETED
    links = assert_chained(run)
    actions = list(run.events.order_by("pk").values_list("action", flat=True))
    assert actions == ["run_started", "step_completed", "step_completed", "step_completed", "run_completed"]
    assert len(set(links)) == len(links)


def test_buffered_steps_are_chained_in_one_write(registered_pipelines):
    registered_pipelines(
        stepkit("chained-buffered")
        .step("a", lambda c: {"a": 1})
        .step("b", lambda c: {"b": 2})
        .step("c", lambda c: {"c": 3}),
        durability="pause",
    )
    run = start("chained-buffered", {})
    assert run.status == RunStatus.COMPLETED
    assert_chained(run)
    assert run.events.filter(action="step_completed").count() == 3


def test_a_pause_with_buffered_steps_and_the_decisions_after_it_are_chained(people, registered_pipelines):
    registered_pipelines(
        stepkit("chained-review")
        .step("prepare", lambda c: {"prepared": True})
        .step("draft", lambda c: {"draft": "text"}, review=Review(editable=["draft"]))
        .step("send", lambda c: {"sent": True}),
        durability="pause",
    )
    run = start("chained-review", {}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    cp = run.checkpoints.get()
    review.claim(cp, people.bob)
    review.edit(cp, people.bob, {"draft": "edited"})
    review.approve(cp, people.bob, comment="fine")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert_chained(run)
    actions = set(run.events.values_list("action", flat=True))
    assert {"paused", "claimed", "edited", "approved", "resumed", "run_completed"} <= actions


def test_a_step_written_after_another_writer_moved_the_head_is_chained_after_its_event(registered_pipelines):
    """The hot path links its events from the head it last wrote, on condition that the run's head is still
    that one; when another writer appended an event meanwhile, it locks the run, reads its head and links
    them from it."""
    from stepkit_django.execution.progress import save_step

    registered_pipelines(stepkit("chained-stale").step("a", lambda c: {"a": 1}))
    run = start("chained-stale", {})
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me")
    run.refresh_from_db()
    now = timezone.now()
    for events in ([("b", 1.0, now)], [("c", 1.0, now), ("d", 2.0, now)]):  # one event; several
        other = PipelineRun.objects.get(pk=run.pk)
        audit.record(other, AuditAction.EDITED, data={"by": "someone else"})  # `run` is stale now
        assert run.audit_head != bytes(PipelineRun.objects.get(pk=run.pk).audit_head)
        assert save_step(
            run, "me", context={}, outer_contexts=[], position=[], step="x", events=events, now=now, lease_until=None
        )
        assert run.audit_head == bytes(PipelineRun.objects.get(pk=run.pk).audit_head)  # known again
    assert_chained(run)
    actions = list(run.events.order_by("pk").values_list("action", flat=True))
    assert actions[-5:] == ["edited", "step_completed", "edited", "step_completed", "step_completed"]


def test_a_step_of_a_run_no_longer_held_writes_nothing(registered_pipelines):
    from stepkit_django.execution.progress import save_step

    registered_pipelines(stepkit("chained-lost").step("a", lambda c: {"a": 1}))
    run = start("chained-lost", {})
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="other")
    count, now = run.events.count(), timezone.now()
    assert not save_step(
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
    assert run.events.count() == count
    assert_chained(run)


def test_a_rejection_is_chained(people):
    run, cp = paused_email(people)
    review.reject(cp, people.bob, "no")
    assert_chained(run)


def test_a_rerun_and_its_source_are_chained(people):
    run, cp = paused_email(people)
    review.approve(cp, people.bob)
    rerun = review.rerun_from(cp, people.alice, {"subject": "Another subject"})
    assert rerun.status == RunStatus.PAUSED
    assert_chained(run)  # its run_forked event
    assert_chained(rerun)  # run_started, paused, edited


def test_a_cancellation_and_a_retry_are_chained(people, registered_pipelines):
    calls = []

    def flaky(ctx):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")
        return {"ok": True}

    registered_pipelines(stepkit("chained-retry").step("a", lambda c: {"a": 1}).step("flaky", flaky))
    run = start("chained-retry", {}, user=people.root)
    assert run.status == RunStatus.FAILED
    review.retry_run(run, people.root)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert_chained(run)
    paused, _ = paused_email(people)
    review.cancel_run(paused, people.root)
    assert_chained(paused)


def test_a_stale_run_instance_saved_does_not_rewind_the_head(people):
    run, cp = paused_email(people)
    stale = PipelineRun.objects.get(pk=run.pk)
    review.claim(cp, people.bob)
    stale.save()  # a full save of an instance read before the claim
    assert_chained(run)


def test_the_kept_fields_do_not_change_when_data_is_redacted():
    samples = [
        ("edited", {"changes": {"name": {"before": "Ann", "after": "Anne"}}, "step": "review", "via": "link"}),
        ("run_failed", {"step": "send", "error": "ValueError: bad ann@example.com"}),
        ("reassigned", {"before": ["bob"], "after": ["carol"], "kept_from": "x"}),
        ("run_started", {"version": 1, "email": "ann@example.com", "purged_keys": ["z"]}),
        ("step_completed", {"step": "a", "duration_ms": 1.25}),
    ]
    for action, data in samples:
        once = redacted_data(action, data)
        assert redacted_data(action, once) == once, action  # idempotent: the chain hashes what a purge leaves


def test_values_are_canonical_as_the_database_gives_them_back():
    assert (
        chain.canonical({"b": 1.0, "a": [1e16, "é"], "c": (1, 2)})
        == '{"a":[10000000000000000,"é"],"b":1,"c":[1,2]}'.encode()
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_decision_written_while_steps_run_keeps_one_chain(registered_pipelines):
    """A worker writes steps (the hot path's one statement) while another connection appends events through
    the ORM: each write reads the head under the run's lock, so the chain never forks."""
    registered_pipelines(_long_pipeline("chained-race"))
    with override_settings(STEPKIT={"EXECUTOR": "tasks"}):
        run = start("chained-race", {})
    done = threading.Event()
    errors = []

    def worker():
        try:
            advance_run(str(run.pk))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()
            connections.close_all()

    def reviewer():
        try:
            while not done.is_set():
                audit.record(PipelineRun.objects.get(pk=run.pk), AuditAction.EDITED, data={"note": "meanwhile"})
                time.sleep(0.002)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker), threading.Thread(target=reviewer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    actions = list(run.events.order_by("pk").values_list("action", flat=True))
    assert actions.count("step_completed") == 30 and actions.count("edited") > 0
    first_edit, last_step = actions.index("edited"), len(actions) - 1 - actions[::-1].index("step_completed")
    assert first_edit < last_step  # they did interleave
    assert_chained(run)


def _long_pipeline(name):
    pipeline = stepkit(name)
    for i in range(30):
        pipeline = pipeline.step(f"s{i}", lambda c: time.sleep(0.01) or {"n": 1})
    return pipeline
