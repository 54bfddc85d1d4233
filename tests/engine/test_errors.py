"""Failures: on_error modes, timeouts, retries, abort and merge policies."""

import asyncio
import threading
import time

import pytest

from stepkit_django import ContextKeyCollision, PipelineAborted, StepkitError, StepTimeout, stepkit


def fail(ctx):
    raise ValueError("broken step")


def test_on_error_throw_is_the_default_and_raises_the_original_exception():
    with pytest.raises(ValueError, match="broken step"):
        stepkit().step("a", fail).step("b", lambda c: {"b": 1}).run({})


def test_on_error_continue_skips_the_output_and_runs_the_next_step():
    events = []
    p = stepkit().step("a", fail, on_error="continue").step("b", lambda c: {"b": 1})
    assert p.run({}, on_step_complete=lambda e: events.append(e.step_name)) == {"b": 1}
    assert events == ["b"]  # no event for a failed step


def test_on_error_skip_remaining_returns_the_context_so_far():
    p = (
        stepkit()
        .step("first", lambda c: {"first": 1})
        .step("a", fail, on_error="skip-remaining")
        .step("b", lambda c: {"b": 1})
    )
    assert p.run({}) == {"first": 1}


def test_skip_remaining_inside_a_nested_pipeline_only_ends_that_pipeline():
    inner = (
        stepkit()
        .step("x", lambda c: {"x": 1})
        .step("bad", fail, on_error="skip-remaining")
        .step("y", lambda c: {"y": 1})
    )
    p = stepkit().step("outer", inner).step("after", lambda c: {"after": 1})
    assert p.run({}) == {"x": 1, "after": 1}


def test_on_error_handlers_from_config_and_run_are_both_called_config_first():
    calls = []
    p = stepkit(on_error=lambda name, exc: calls.append(("config", name, str(exc)))).step(
        "a", fail, on_error="continue"
    )
    p.run({}, on_error=lambda name, exc: calls.append(("run", name, str(exc))))
    assert calls == [("config", "a", "broken step"), ("run", "a", "broken step")]


def test_on_error_receives_the_nested_display_path():
    calls = []
    inner = stepkit().step("bad", fail, on_error="continue")
    stepkit().step("outer", inner).run({}, on_error=lambda name, exc: calls.append(name))
    assert calls == ["outer/bad"]


def test_timeout_raises_step_timeout_with_name_and_seconds():
    def slow(ctx):
        time.sleep(10)
        return {"late": True}

    started = time.perf_counter()
    with pytest.raises(StepTimeout, match=r"Step 'slow' timed out after 0.1s"):
        stepkit().step("slow", slow, timeout=0.1).run({})
    assert time.perf_counter() - started < 5  # did not wait for the step


def test_timeout_with_continue_discards_a_late_sync_result():
    finished = threading.Event()

    def slow(ctx):
        time.sleep(0.3)
        finished.set()
        return {"late": True}

    p = stepkit().step("slow", slow, timeout=0.05, on_error="continue").step("after", lambda c: {"after": True})
    out = p.run({})
    assert out == {"after": True}
    assert finished.wait(2)  # the thread finished later; its result was not merged
    assert "late" not in out


def test_timeout_cancels_an_async_step():
    state = {"cancelled": False, "finished": False}

    async def slow(ctx):
        try:
            await asyncio.sleep(1)
            state["finished"] = True
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return {}

    p = stepkit().step("slow", slow, timeout=0.05, on_error="continue")
    assert asyncio.run(p.arun({})) == {}
    assert state == {"cancelled": True, "finished": False}
    state["cancelled"] = False
    assert p.run({}) == {}
    assert state == {"cancelled": True, "finished": False}


def test_a_timeout_error_raised_by_the_step_itself_is_not_a_step_timeout():
    def raises_timeout(ctx):
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError, match="upstream timed out") as info:
        stepkit().step("s", raises_timeout, timeout=5).run({})
    assert not isinstance(info.value, StepTimeout)


def test_timeout_applies_per_attempt_with_retries():
    attempts = []

    def flaky(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(0.5)
        return {"ok": len(attempts)}

    assert stepkit().step("s", flaky, timeout=0.1, retries=1).run({}) == {"ok": 2}


def test_timeout_on_a_parallel_step_and_a_nested_pipeline():
    def slow(ctx):
        time.sleep(0.5)
        return {}

    p = stepkit().step("fan", lambda c: {}, slow, timeout=0.1)
    with pytest.raises(StepTimeout):
        p.run({})
    nested = stepkit().step("outer", stepkit().step("inner", slow), timeout=0.1)
    with pytest.raises(StepTimeout, match="Step 'outer' timed out"):
        asyncio.run(nested.arun({}))


def test_retries_with_delay_until_success():
    attempts = []

    def flaky(ctx):
        attempts.append(time.perf_counter())
        if len(attempts) < 3:
            raise ConnectionError("429: too many requests")
        return {"data": 42}

    assert stepkit().step("fetch", flaky, retries=2, retry_delay=0.05).run({}) == {"data": 42}
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.045
    assert attempts[2] - attempts[1] >= 0.045


def test_retry_delay_may_be_a_callable_of_attempt_and_exception():
    seen = []

    def delay(attempt, exc):
        seen.append((attempt, str(exc)))
        return 0

    calls = []

    def flaky(ctx):
        calls.append(1)
        raise RuntimeError(f"fail {len(calls)}")

    with pytest.raises(RuntimeError, match="fail 3"):
        stepkit().step("s", flaky, retries=2, retry_delay=delay).run({})
    assert seen == [(1, "fail 1"), (2, "fail 2")]


def test_should_retry_decides_which_errors_are_retried():
    calls = []

    def failing(ctx):
        calls.append(1)
        raise PermissionError("403")

    p = stepkit().step("s", failing, retries=3, should_retry=lambda exc: "429" in str(exc))
    with pytest.raises(PermissionError):
        p.run({})
    assert len(calls) == 1


def test_retries_default_to_any_exception():
    calls = []

    def failing(ctx):
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        stepkit().step("s", failing, retries=2).run({})
    assert len(calls) == 3


def test_each_retry_gets_a_fresh_copy_of_the_context():
    seen = []

    def flaky(ctx):
        seen.append(list(ctx["items"]))
        ctx["items"].append("dirty")
        if len(seen) < 2:
            raise RuntimeError
        return {}

    stepkit().step("s", flaky, retries=1).run({"items": []})
    assert seen == [[], []]


def test_signal_aborts_before_the_next_step():
    stop = threading.Event()
    ran = []

    def first(ctx):
        ran.append("first")
        stop.set()
        return {}

    p = stepkit().step("first", first).step("second", lambda c: ran.append("second") or {})
    with pytest.raises(PipelineAborted, match="before step 'second'"):
        p.run({}, signal=stop)
    assert ran == ["first"]
    assert isinstance(PipelineAborted("x"), StepkitError)


def test_signal_already_set_runs_nothing():
    stop = threading.Event()
    stop.set()
    ran = []
    with pytest.raises(PipelineAborted):
        asyncio.run(stepkit(signal=stop).step("s", lambda c: ran.append(1)).arun({}))
    assert ran == []


def test_signal_is_checked_between_nested_steps():
    stop = threading.Event()
    inner = stepkit().step("a", lambda c: stop.set()).step("b", lambda c: {"b": 1})
    with pytest.raises(PipelineAborted, match="before step 'outer/b'"):
        stepkit().step("outer", inner).run({}, signal=stop)


def test_abort_is_not_swallowed_by_on_error_continue():
    stop = threading.Event()
    inner = stepkit().step("a", lambda c: stop.set()).step("b", lambda c: {"b": 1})
    with pytest.raises(PipelineAborted):
        stepkit().step("outer", inner, on_error="continue").run({}, signal=stop)


def test_merge_policy_override_is_the_default():
    assert stepkit().step("s", lambda c: {"a": 2}).run({"a": 1}) == {"a": 2}


def test_merge_policy_error_raises_context_key_collision():
    with pytest.raises(ContextKeyCollision, match="Context key collision: 'a' already exists"):
        stepkit().step("s", lambda c: {"a": 2}, merge_policy="error").run({"a": 1})


def test_merge_policy_error_between_parallel_outputs():
    p = stepkit().step("s", lambda c: {"k": 1}, lambda c: {"k": 2}, merge_policy="error")
    with pytest.raises(ContextKeyCollision, match="'k' already exists"):
        p.run({})


def test_merge_policy_warn_logs_and_overrides(lines, caplog):
    p = stepkit().step("s", lambda c: {"a": 2}, merge_policy="warn")
    assert p.run({"a": 1}, log=lines.log()) == {"a": 2}
    assert "Key collision on 'a'" in lines.text
    with caplog.at_level("WARNING", logger="stepkit_django"):
        assert p.run({"a": 1}) == {"a": 2}
    assert "Key collision on 'a'" in caplog.text


def test_merge_policy_skip_keeps_the_old_value():
    assert stepkit().step("s", lambda c: {"a": 2, "b": 3}, merge_policy="skip").run({"a": 1}) == {"a": 1, "b": 3}


def test_merge_policy_applies_to_nested_merge_back():
    inner = stepkit().step("i", lambda c: {"a": "inner"})
    assert stepkit().step("outer", inner, merge_policy="skip").run({"a": "outer"}) == {"a": "outer"}
    with pytest.raises(ContextKeyCollision):
        stepkit().step("outer", inner, merge_policy="error").run({"a": "outer"})
