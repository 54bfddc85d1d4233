"""Human-paced writes go through the ORM: Django's model signals are sent for what they save.

A project can listen to ``post_save`` of ``Checkpoint``, ``Approval`` and
``AuditEvent`` (to notify someone, to index, to mirror) as it would for any model.
"""

from datetime import timedelta

import pytest
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils import timezone

from stepkit_django import Review, ReviewConflict, review, start, stepkit
from stepkit_django.models import Approval, AuditEvent, Checkpoint, PipelineRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def saved():
    """(model name, created, update_fields) of every post_save / post_delete of the app's models."""
    seen = []

    def on_save(sender, instance, created, update_fields, **kwargs):
        seen.append((sender.__name__, created, frozenset(update_fields or ())))

    def on_delete(sender, instance, **kwargs):
        seen.append((sender.__name__, "deleted", frozenset()))

    models = (Checkpoint, Approval, AuditEvent, PipelineRun)
    for model in models:
        post_save.connect(on_save, sender=model, weak=False)
        post_delete.connect(on_delete, sender=model, weak=False)
    yield seen
    for model in models:
        post_save.disconnect(on_save, sender=model)
        post_delete.disconnect(on_delete, sender=model)


def paused(registered_pipelines, people, **options):
    registered_pipelines(
        stepkit("signals")
        .step("draft", lambda c: {"body": "Dear Ann"}, review=Review(editable=["body"], **options))
        .step("send", lambda c: {"sent": True})
    )
    return start("signals", {}, user=people.alice).checkpoints.get()


def test_an_approval_sends_post_save_for_the_checkpoint_the_run_the_approval_and_its_events(
    registered_pipelines, people, saved
):
    cp = paused(registered_pipelines, people)
    saved.clear()
    review.approve(cp, people.bob)
    decision = saved
    checkpoint_saves = [s for s in decision if s[0] == "Checkpoint"]
    assert checkpoint_saves and {"status", "decided_by", "decided_at", "version"} <= checkpoint_saves[0][2]
    assert ("Approval", True, frozenset()) in decision
    assert [s for s in decision if s[0] == "AuditEvent" and s[1] is True][:2]  # approved, resumed
    run_saves = [s for s in decision if s[0] == "PipelineRun"]
    assert run_saves and "status" in run_saves[0][2]


def test_claims_releases_edits_and_rejections_send_post_save(registered_pipelines, people, saved):
    cp = paused(registered_pipelines, people)
    saved.clear()
    cp = review.claim(cp, people.bob)
    assert ("Checkpoint", False) in {s[:2] for s in saved} and "claimed_by" in saved[0][2]
    saved.clear()
    cp = review.edit(cp, people.bob, {"body": "Dear Ann,\nthanks"})
    assert any(s[0] == "Checkpoint" and "override_data" in s[2] for s in saved)
    assert any(s[0] == "AuditEvent" and s[1] is True for s in saved)
    saved.clear()
    review.reject(cp, people.bob, comment="not yet")
    assert any(s[0] == "Checkpoint" and "status" in s[2] for s in saved)
    assert any(s[0] == "PipelineRun" and "status" in s[2] for s in saved)


def test_reassignment_and_expiry_send_post_save(registered_pipelines, people, saved):
    cp = paused(registered_pipelines, people, timeout=timedelta(hours=1), on_timeout="reject")
    saved.clear()
    cp = review.reassign(cp, people.root, to_groups=["managers"])
    assert any(s[0] == "Checkpoint" and "assigned" in s[2] for s in saved)
    saved.clear()
    assert review.expire_due(now=timezone.now() + timedelta(hours=2)) == 1
    assert any(s[0] == "Checkpoint" and "status" in s[2] for s in saved)
    assert Checkpoint.objects.get(pk=cp.pk).status == "expired"


def test_a_voided_approval_sends_post_delete(registered_pipelines, people, saved):
    cp = paused(registered_pipelines, people, approvals_required=2)
    cp = review.approve(cp, people.bob)
    saved.clear()
    review.edit(cp, people.carol, {"body": "Dear Ann, changed"})
    assert ("Approval", "deleted", frozenset()) in saved


def test_a_pre_save_receiver_that_raises_leaves_the_decision_undone(registered_pipelines, people):
    cp = paused(registered_pipelines, people)

    def refuse(sender, instance, update_fields=None, **kwargs):
        if update_fields and "decided_by" in update_fields:
            raise RuntimeError("the project's own rule refused it")

    pre_save.connect(refuse, sender=Checkpoint, weak=False)
    try:
        with pytest.raises(RuntimeError):
            review.approve(cp, people.bob)
    finally:
        pre_save.disconnect(refuse, sender=Checkpoint)
    stored = Checkpoint.objects.get(pk=cp.pk)
    assert stored.status == "pending" and stored.version == cp.version
    assert not Approval.objects.exists() and stored.run.status == "paused"
    # the instance the caller holds is as it was: approving it again works
    assert cp.status == "pending" and review.approve(cp, people.bob).status == "approved"


def test_a_conflict_still_wins_once_and_the_loser_sends_nothing(registered_pipelines, people, saved):
    cp = paused(registered_pipelines, people)
    stale = Checkpoint.objects.get(pk=cp.pk)
    review.approve(cp, people.bob)
    saved.clear()
    with pytest.raises(ReviewConflict):
        review.reject(stale, people.carol)
    assert saved == []
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"


def test_the_events_of_a_change_are_one_insert_and_each_still_sends_pre_save_and_post_save(
    registered_pipelines, people, saved
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cp = paused(registered_pipelines, people)
    before = []

    def on_pre_save(sender, instance, update_fields=None, **kwargs):
        before.append((instance.action, instance.pk))

    pre_save.connect(on_pre_save, sender=AuditEvent, weak=False)
    saved.clear()
    try:
        with CaptureQueriesContext(connection) as queries:
            review.approve(cp, people.bob, override_data={"body": "Dear Ann,"})  # edited, approved, resumed
    finally:
        pre_save.disconnect(on_pre_save, sender=AuditEvent)
    assert before == [("edited", None), ("approved", None), ("resumed", None)]  # before the INSERT, as save()
    assert [s for s in saved if s[0] == "AuditEvent"][:3] == [("AuditEvent", True, frozenset())] * 3
    inserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "stepkit_django_auditevent"')
    ]
    decision = [sql for sql in inserts if "resumed" in sql]
    if connection.features.can_return_rows_from_bulk_insert:  # the keys come back: one INSERT for the three
        assert len(decision) == 1 and "edited" in decision[0] and "approved" in decision[0]
    stored = AuditEvent.objects.filter(checkpoint=cp).exclude(action="paused").order_by("pk")
    assert list(stored.values_list("action", flat=True)) == ["edited", "approved", "resumed"]


def test_the_run_and_the_checkpoint_are_each_written_by_one_update(registered_pipelines, people, saved):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cp = paused(registered_pipelines, people)
    saved.clear()
    with CaptureQueriesContext(connection) as queries:
        review.reject(cp, people.bob, comment="not yet")
    updates = [q["sql"].split()[1] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    run, checkpoint = '"stepkit_django_pipelinerun"', '"stepkit_django_checkpoint"'
    # The run first: the lock order. SQLite: a no-op UPDATE of the run takes the write lock before its head is read.
    assert updates == ([run, run, checkpoint] if connection.vendor == "sqlite" else [run, checkpoint])
    assert [s[0] for s in saved] == ["Checkpoint", "PipelineRun", "AuditEvent"]


def test_a_writer_that_loses_the_checkpoint_after_claiming_the_run_sends_no_post_save(
    registered_pipelines, people, saved
):
    from django.db.models import F

    cp = paused(registered_pipelines, people)

    def claimed_meanwhile(sender, instance, **kwargs):  # another writer's claim lands between the two UPDATEs
        Checkpoint.objects.filter(pk=cp.pk).update(version=F("version") + 1)

    saved.clear()
    pre_save.connect(claimed_meanwhile, sender=PipelineRun, weak=False)
    try:
        with pytest.raises(ReviewConflict):
            review.approve(cp, people.bob)
    finally:
        pre_save.disconnect(claimed_meanwhile, sender=PipelineRun)
    assert saved == []  # the run's UPDATE had matched, but the change as a whole lost: no post_save
    stored = Checkpoint.objects.get(pk=cp.pk)
    assert stored.status == "pending" and stored.run.status == "paused" and not Approval.objects.exists()
    assert cp.status == "pending" and cp.run.status == "paused"  # the caller's instances as they were
