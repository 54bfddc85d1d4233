"""The runner: durable progress, failures, retries, crash recovery, idempotency, registry and signals."""

import pytest
from django.dispatch import receiver

from stepkit_django import (
    CheckpointError,
    PipelineNotFound,
    Review,
    ReviewConflict,
    ReviewPermissionDenied,
    get_pipeline,
    register,
    registered,
    resume_run,
    review,
    signals,
    start,
    stepkit,
)
from stepkit_django.execution.runner import RunNotResumable
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus

pytestmark = pytest.mark.django_db


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing records a failure."""


def counting_pipeline(name, calls, crash_at=None, fail_at=None):
    def step(label):
        def run(ctx):
            calls.append(label)
            if label == crash_at and calls.count(label) == 1:
                raise Crash
            if label == fail_at and calls.count(label) == 1:
                raise RuntimeError(f"{label} broke")
            return {label: ctx.get("n", 0) + 1, "n": ctx.get("n", 0) + 1}

        return run

    return stepkit(name).step("a", step("a")).step("b", step("b")).step("c", step("c")).step("d", step("d"))


def test_progress_is_saved_after_every_step(people, registered_pipelines):
    seen = []
    registered_pipelines(
        stepkit("observed")
        .step("a", lambda c: {"a": 1})
        .step("b", lambda c: seen.append(PipelineRun.objects.get().context.copy()) or {"b": 2})
    )
    run = start("observed", {"x": 0})
    assert seen == [{"x": 0, "a": 1}]  # step b saw step a's output already saved
    run.refresh_from_db()
    assert (run.status, run.current_step, run.context) == (RunStatus.COMPLETED, "b", {"x": 0, "a": 1, "b": 2})
    assert [e.data["step"] for e in run.events.filter(action="step_completed")] == ["a", "b"]
    assert all(e.data["duration_ms"] >= 0 for e in run.events.filter(action="step_completed"))


def test_a_run_whose_process_died_resumes_without_re_running_completed_steps(registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("crashy", calls, crash_at="c"))
    with pytest.raises(Crash):
        start("crashy", {})
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.RUNNING and run.current_step == "b"
    # its lease is still valid: nobody else may take it yet
    with pytest.raises(RunNotResumable, match="being executed by"):
        resume_run(run)
    run = resume_run(run, force=True)  # we know the process is gone
    assert run.status == RunStatus.COMPLETED
    assert calls == ["a", "b", "c", "c", "d"]  # only the interrupted step ran again
    assert run.context == {"a": 1, "b": 2, "c": 3, "d": 4, "n": 4}


def test_recover_requeues_runs_whose_lease_expired(registered_pipelines):
    from datetime import timedelta

    from django.utils import timezone

    from stepkit_django.execution.jobs import recover

    calls = []
    registered_pipelines(counting_pipeline("crashy2", calls, crash_at="c"))
    with pytest.raises(Crash):
        start("crashy2", {})
    run = PipelineRun.objects.get()
    assert recover() == 0  # the lease is still valid
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert recover() == 1  # re-queued and, with the inline executor, finished right here
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert calls == ["a", "b", "c", "c", "d"]
    assert run.events.filter(action="run_recovered").count() == 1
    assert run.lease_owner == "" and run.lease_expires_at is None


def test_only_running_runs_resume(people):
    run = start("email-approval", {"message": "m", "customer": "c", "to": "t"}, user=people.alice)
    with pytest.raises(RunNotResumable, match="paused"):
        resume_run(run)


def test_a_failing_step_fails_the_run_with_error_and_traceback(people, registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("flaky", calls, fail_at="c"))
    run = start("flaky", {}, user=people.alice)
    assert run.status == RunStatus.FAILED
    assert run.error == "RuntimeError: c broke"
    assert "Traceback" in run.traceback and "c broke" in run.traceback
    assert run.events.get(action="run_failed").data == {"step": "c", "error": "RuntimeError: c broke"}

    run = review.retry_run(run, people.alice)
    assert run.status == RunStatus.COMPLETED
    assert calls == ["a", "b", "c", "c", "d"]
    assert run.error == ""
    assert [e.action for e in run.events.all()][-4:] == [
        "run_retried",
        "step_completed",
        "step_completed",
        "run_completed",
    ]


def test_only_failed_runs_are_retried_by_their_starter_or_a_manager(people, registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("flaky2", calls, fail_at="a"))
    run = start("flaky2", {}, user=people.alice)
    with pytest.raises(ReviewPermissionDenied):
        review.retry_run(run, people.bob)
    review.retry_run(run, people.root)
    with pytest.raises(ReviewConflict, match="Only failed runs"):
        review.retry_run(run, people.root)


def test_idempotency_key_returns_the_same_run_and_starts_nothing(registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("once", calls))
    first = start("once", {}, idempotency_key="order-42")
    second = start("once", {}, idempotency_key="order-42")
    assert first.pk == second.pk
    assert PipelineRun.objects.count() == 1
    assert calls == ["a", "b", "c", "d"]


def test_a_key_taken_meanwhile_returns_that_run_and_leaves_the_callers_transaction_usable(
    registered_pipelines, monkeypatch
):
    from django.db import transaction

    from stepkit_django.models import PipelineRunQuerySet

    calls = []
    registered_pipelines(counting_pipeline("race", calls))
    first = start("race", {}, idempotency_key="order-7")
    # As if another process inserted the key between start()'s lookup and its INSERT:
    monkeypatch.setattr(PipelineRunQuerySet, "first", lambda self: None)
    with transaction.atomic():
        second = start("race", {}, idempotency_key="order-7")
        assert second.pk == first.pk
        assert PipelineRun.objects.count() == 1  # the unique violation did not break this transaction
    assert calls == ["a", "b", "c", "d"]


def test_a_context_value_that_cannot_be_stored_fails_the_run_naming_its_key(registered_pipelines):
    registered_pipelines(stepkit("bad-value").step("s", lambda c: {"user": {"created": object()}}))
    run = start("bad-value", {})
    assert run.status == RunStatus.FAILED
    assert "context['user']['created']" in run.error


def test_input_that_cannot_be_stored_is_refused_before_anything_runs(registered_pipelines):
    registered_pipelines(stepkit("input-check").step("s", lambda c: {}))
    with pytest.raises(CheckpointError, match=r"context\['when'\]"):
        start("input-check", {"when": object()})
    assert not PipelineRun.objects.exists()


# -- the registry ---------------------------------------------------------------------------


def test_pipelines_py_modules_are_discovered():
    assert {"email-approval", "payment-approval"} <= set(registered())


def test_unknown_pipeline_names_list_the_registered_ones():
    with pytest.raises(
        PipelineNotFound,
        match=r"No pipeline named 'nope'.*Registered pipelines: crash-demo, email-approval, five-steps",
    ):
        get_pipeline("nope")
    with pytest.raises(PipelineNotFound):
        start("nope", {})


def test_starting_an_unregistered_pipeline_object_is_refused():
    with pytest.raises(PipelineNotFound, match=r"Register it with stepkit_django\.register"):
        start(stepkit("loose").step("s"), {})


def test_register_requires_a_name():
    with pytest.raises(ValueError, match="named"):
        register(stepkit().step("s"))


# -- signals --------------------------------------------------------------------------------


def capture(signal):
    received = []

    @receiver(signal, weak=False)
    def handler(sender, **kwargs):
        received.append((sender, kwargs))

    return received, lambda: signal.disconnect(handler)


def test_run_started_and_run_finished_signals(people, registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("signals", calls))
    started, stop1 = capture(signals.run_started)
    finished, stop2 = capture(signals.run_finished)
    try:
        run = start("signals", {}, user=people.alice)
    finally:
        stop1()
        stop2()
    assert [(s, k["run"].pk, k["user"]) for s, k in started] == [(PipelineRun, run.pk, people.alice)]
    assert [(s, k["run"].pk, k["status"]) for s, k in finished] == [(PipelineRun, run.pk, "completed")]


def test_step_completed_signal_carries_run_event_and_stop_pipeline(registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("steps", calls))
    received = []

    @receiver(signals.step_completed, weak=False)
    def handler(sender, run, event, stop_pipeline, **kwargs):
        saved = PipelineRun.objects.get(pk=run.pk)
        received.append((sender, event.step_name, run.current_step, saved.current_step, callable(stop_pipeline)))

    try:
        start("steps", {})
    finally:
        signals.step_completed.disconnect(handler)
    # sent once per step, after the step's progress was saved (in the same transaction)
    assert received == [(PipelineRun, step, step, step, True) for step in "abcd"]


def test_a_users_receiver_can_pause_on_its_own_rule(people, registered_pipelines):
    calls = []
    registered_pipelines(counting_pipeline("own-rule", calls))

    @receiver(signals.step_completed, weak=False)
    def pause_when_large(sender, run, event, stop_pipeline, **kwargs):
        if run.pipeline_name == "own-rule" and event.step_name == "b":
            stop_pipeline(review=Review(assign_to_group="managers"))

    try:
        run = start("own-rule", {}, user=people.alice)
    finally:
        signals.step_completed.disconnect(pause_when_large)
    assert run.status == RunStatus.PAUSED and calls == ["a", "b"]
    cp = run.checkpoints.get()
    assert cp.step == "b"
    review.approve(cp, people.dave)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and calls == ["a", "b", "c", "d"]


def test_checkpoint_created_and_decided_signals(people):
    created, stop1 = capture(signals.checkpoint_created)
    decided, stop2 = capture(signals.checkpoint_decided)
    try:
        run = start("email-approval", {"message": "m", "customer": "c", "to": "t"}, user=people.alice)
        cp = run.checkpoints.get()
        review.reject(cp, people.bob)
    finally:
        stop1()
        stop2()
    assert [(k["checkpoint"].pk, k["run"].pk) for _, k in created] == [(cp.pk, run.pk)]
    assert [(k["checkpoint"].pk, k["decision"], k["user"]) for _, k in decided] == [(cp.pk, "rejected", people.bob)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", ["completed", "paused", "failed"])
def test_the_run_start_returns_is_what_the_database_holds(registered_pipelines, ending):
    from django.forms.models import model_to_dict

    from stepkit_django import Review

    def last(ctx):
        if ending == "failed":
            raise ValueError("no")
        return {"done": True}

    review = Review() if ending == "paused" else None
    registered_pipelines(stepkit("mirror").step("a", lambda c: {"a": 1}, review=review).step("b", last))
    run = start("mirror", {"n": 1})
    assert run.status == ending
    stored = PipelineRun.objects.get(pk=run.pk)
    fields = [f.name for f in PipelineRun._meta.concrete_fields]
    assert model_to_dict(run, fields=fields) == model_to_dict(stored, fields=fields)
    assert (run.created_at, run.updated_at, run.started_at, run.finished_at, run.lease_expires_at) == (
        stored.created_at,
        stored.updated_at,
        stored.started_at,
        stored.finished_at,
        stored.lease_expires_at,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["approve", "retry"])
def test_the_run_a_decision_resumes_is_what_the_database_holds(people, registered_pipelines, how):
    from django.forms.models import model_to_dict

    from stepkit_django import Review, review

    attempts = []

    def flaky(ctx):
        attempts.append(1)
        if how == "retry" and len(attempts) == 1:
            raise ValueError("first time")
        return {"done": True}

    registered_pipelines(stepkit("resumed").step("a", lambda c: {"a": 1}, review=Review()).step("b", flaky))
    run = start("resumed", {}, user=people.alice)
    decided = review.approve(run.checkpoints.get(), people.bob)
    run = decided.run
    if how == "retry":
        assert run.status == "failed"
        run = review.retry_run(run, people.alice)
    assert run.status == "completed"
    stored = PipelineRun.objects.get(pk=run.pk)
    fields = [f.name for f in PipelineRun._meta.concrete_fields]
    assert model_to_dict(run, fields=fields) == model_to_dict(stored, fields=fields)
    assert (run.updated_at, run.started_at, run.finished_at, run.lease_owner) == (
        stored.updated_at,
        stored.started_at,
        stored.finished_at,
        stored.lease_owner,
    )
