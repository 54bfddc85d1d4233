"""durability="pause": progress written only when a run pauses, fails or ends."""

import pytest

from stepkit_django import Review, register, resume_run, review, start, stepkit
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus

pytestmark = pytest.mark.django_db


class Crash(BaseException):
    pass


def saved_step():
    return PipelineRun.objects.get().current_step


def test_steps_are_not_written_one_by_one_but_all_are_audited_at_the_end(registered_pipelines):
    seen = []
    pipeline = stepkit("fast").step("a", lambda c: {"a": 1}).step("b", lambda c: seen.append(saved_step()) or {"b": 2})
    registered_pipelines(pipeline, durability="pause")
    run = start("fast", {})
    assert seen == [""]  # step b ran while nothing had been written yet
    assert run.status == RunStatus.COMPLETED
    assert run.context == {"a": 1, "b": 2} and run.current_step == "b"
    steps = [e.data["step"] for e in run.events.filter(action="step_completed")]
    assert steps == ["a", "b"]


def test_a_pause_writes_the_progress_with_the_checkpoint(people, registered_pipelines):
    sent = []
    registered_pipelines(
        stepkit("fast-review")
        .step("prepare", lambda c: {"prepared": True})
        .step("draft", lambda c: {"draft": "text"}, review=Review())
        .step("send", lambda c: sent.append(c["draft"]) or {"sent": True}),
        durability="pause",
    )
    run = start("fast-review", {}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    assert run.current_step == "draft" and run.context == {"prepared": True, "draft": "text"}
    assert [e.action for e in run.events.all()] == ["run_started", "step_completed", "step_completed", "paused"]
    review.approve(run.checkpoints.get(), people.bob, override_data={"draft": "edited"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and sent == ["edited"]


def test_a_failure_keeps_the_steps_that_completed(people, registered_pipelines):
    calls = []

    def flaky(ctx):
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise RuntimeError("once")
        return {"flaky": True}

    registered_pipelines(
        stepkit("fast-fail").step("a", lambda c: calls.append("a") or {"a": 1}).step("flaky", flaky),
        durability="pause",
    )
    run = start("fast-fail", {}, user=people.alice)
    assert run.status == RunStatus.FAILED and run.current_step == "a"
    run = review.retry_run(run, people.alice)
    assert run.status == RunStatus.COMPLETED
    assert calls == ["a", "flaky", "flaky"]  # "a" was saved at the failure and not repeated


def test_a_crash_repeats_the_steps_since_the_last_save(registered_pipelines):
    calls = []

    def crash_once(ctx):
        calls.append("b")
        if calls.count("b") == 1:
            raise Crash
        return {"b": 1}

    registered_pipelines(
        stepkit("fast-crash").step("a", lambda c: calls.append("a") or {"a": 1}).step("b", crash_once),
        durability="pause",
    )
    with pytest.raises(Crash):
        start("fast-crash", {})
    run = resume_run(PipelineRun.objects.get(), force=True)
    assert run.status == RunStatus.COMPLETED
    assert calls == ["a", "b", "a", "b"]  # the trade-off: nothing was saved before the crash


def test_durability_must_be_step_or_pause():
    with pytest.raises(ValueError, match="durability must be one of step, pause"):
        register(stepkit("bad").step("s"), durability="sometimes")
