"""Running pipelines: context accumulation, isolation, parallel, nested, branches, transforms, conditions."""

import asyncio
import threading

import pytest

from stepkit_django import otherwise, stepkit, when


def test_steps_accumulate_a_context_by_shallow_merge():
    p = (
        stepkit()
        .step("fetch-user", lambda c: {"user": {"id": c["id"], "name": "John"}})
        .step("process", lambda c: {"result": c["user"]["name"].upper()})
    )
    assert p.run({"id": "42"}) == {"id": "42", "user": {"id": "42", "name": "John"}, "result": "JOHN"}


def test_input_is_never_mutated():
    data = {"items": [1, 2], "meta": {"n": 1}}
    p = stepkit().step("grow", lambda c: {"items": [*c["items"], 3], "meta": {"n": 2}})
    p.run(data)
    assert data == {"items": [1, 2], "meta": {"n": 1}}


def test_mutating_the_given_context_does_not_change_pipeline_state():
    def vandal(ctx):
        ctx["user"]["name"] = "mallory"
        ctx["items"].append("x")
        ctx["new"] = True
        ctx.clear()

    seen = {}
    p = stepkit().step("vandal", vandal).step("look", lambda c: seen.update(c) or None)
    out = p.run({"user": {"name": "alice"}, "items": []})
    assert out == {"user": {"name": "alice"}, "items": []}
    assert seen == out


def test_returning_none_merges_nothing():
    assert stepkit().step("s", lambda c: None).run({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("bad", [1, "text", [("a", 1)], 3.5])
def test_a_step_returning_anything_else_raises_type_error(bad):
    with pytest.raises(TypeError, match="Step function must return a dict or None"):
        stepkit().step("s", lambda c: bad).run({})


def test_async_steps_and_arun():
    async def fetch(ctx):
        await asyncio.sleep(0)
        return {"fetched": ctx["id"] * 2}

    p = stepkit().step("fetch", fetch).step("sync", lambda c: {"total": c["fetched"] + 1})
    assert p.run({"id": 2}) == {"id": 2, "fetched": 4, "total": 5}
    assert asyncio.run(p.arun({"id": 2})) == {"id": 2, "fetched": 4, "total": 5}


def test_parallel_items_merge_in_argument_order():
    p = stepkit().step("both", lambda c: {"k": "first", "a": 1}, lambda c: {"k": "second", "b": 2})
    assert p.run({}) == {"k": "second", "a": 1, "b": 2}


def test_parallel_sync_items_really_overlap_in_time():
    barrier = threading.Barrier(3, timeout=5)

    def item(name):
        def run(ctx):
            barrier.wait()  # would time out (BrokenBarrierError) if the items ran one after another
            return {name: True}

        return run

    p = stepkit().step("fan-out", item("a"), item("b"), item("c"))
    assert p.run({}) == {"a": True, "b": True, "c": True}
    barrier.reset()
    assert asyncio.run(p.arun({})) == {"a": True, "b": True, "c": True}


def test_parallel_async_items_overlap_in_time():
    async def run():
        arrived = 0
        everyone = asyncio.Event()

        async def item(name):
            nonlocal arrived
            arrived += 1
            if arrived == 4:
                everyone.set()
            # only returns if all four items are running at the same time
            await asyncio.wait_for(everyone.wait(), timeout=5)
            return {name: True}

        p = stepkit().step(
            "fan-out", lambda c: item("a"), lambda c: item("b"), lambda c: item("c"), lambda c: item("d")
        )
        return await p.arun({})

    assert asyncio.run(run()) == {"a": True, "b": True, "c": True, "d": True}


def test_parallel_mode_all_fails_the_step_on_the_first_failure():
    def boom(ctx):
        raise RuntimeError("item failed")

    p = stepkit().step("fan-out", lambda c: {"ok": 1}, boom)
    with pytest.raises(RuntimeError, match="item failed"):
        p.run({})
    with pytest.raises(RuntimeError, match="item failed"):
        asyncio.run(p.arun({}))


def test_parallel_mode_settled_leaves_failed_items_out(lines):
    def boom(ctx):
        raise RuntimeError("item failed")

    p = stepkit().step("fan-out", lambda c: {"a": 1}, boom, lambda c: {"c": 3}, parallel_mode="settled")
    assert p.run({}, log=lines.log()) == {"a": 1, "c": 3}
    assert "fan-out item 2 failed and was left out: RuntimeError: item failed" in lines.text
    assert asyncio.run(p.arun({})) == {"a": 1, "c": 3}


def test_nested_pipeline_gets_a_copy_and_merges_only_new_or_changed_keys():
    received = {}

    def inner_step(ctx):
        received.update(ctx)
        ctx["shared"].append("mutated")
        return {"new": 1, "same": "unchanged", "changed": "after"}

    inner = stepkit().step("work", inner_step).transform("drop", lambda c: {"new": c["new"], "changed": c["changed"]})
    p = stepkit().step("outer", inner)
    out = p.run({"same": "unchanged", "changed": "before", "shared": [], "kept": True})
    assert received["same"] == "unchanged"
    # 'kept' was dropped inside the nested pipeline, but only new/changed keys merge back
    assert out == {"same": "unchanged", "changed": "after", "shared": [], "kept": True, "new": 1}


def test_nested_step_names_are_shown_as_outer_slash_inner():
    names = []
    inner = stepkit().step("a", lambda c: {"x": 1}).step("b", lambda c: None)
    stepkit().step("outer", inner).step("end").run({}, on_step_complete=lambda e: names.append(e.step_name))
    # nested steps fire before their container
    assert names == ["outer/a", "outer/b", "outer", "end"]


def test_parallel_step_can_mix_functions_and_pipelines():
    inner = stepkit().step("i", lambda c: {"from_pipeline": c["n"] + 1})
    p = stepkit().step("mixed", lambda c: {"from_fn": c["n"] * 2}, inner)
    assert p.run({"n": 5}) == {"n": 5, "from_fn": 10, "from_pipeline": 6}


def test_branch_on_runs_the_first_true_case():
    names = []
    p = stepkit().branch_on(
        "route",
        when(lambda c: c["n"] % 2 == 1, stepkit().step("odd-step", lambda c: {"kind": "odd"}), name="odd"),
        when(lambda c: c["n"] > 0, stepkit().step("positive", lambda c: {"kind": "positive"})),
        otherwise(stepkit().step("fallback", lambda c: {"kind": "other"})),
    )
    record = {"on_step_complete": lambda e: names.append(e.step_name)}
    assert p.run({"n": 3}, **record)["kind"] == "odd"
    assert p.run({"n": 2}, **record)["kind"] == "positive"
    assert p.run({"n": -2}, **record)["kind"] == "other"
    assert names == ["route/odd/odd-step", "route", "route/case-2/positive", "route", "route/default/fallback", "route"]


def test_branch_without_match_or_otherwise_still_completes():
    names = []
    p = stepkit().branch_on("route", when(lambda c: False, stepkit().step("x", lambda c: {"x": 1}))).step("after")
    assert p.run({"a": 1}, on_step_complete=lambda e: names.append(e.step_name)) == {"a": 1}
    assert names == ["route", "after"]


def test_async_predicates_are_awaited():
    async def is_big(ctx):
        return ctx["amount"] > 1000

    p = stepkit().branch_on(
        "route",
        when(is_big, stepkit().step("manager", lambda c: {"approver": "manager"})),
        otherwise(stepkit().step("auto", lambda c: {"approver": "auto"})),
    )
    assert p.run({"amount": 5000})["approver"] == "manager"
    assert asyncio.run(p.arun({"amount": 10}))["approver"] == "auto"


def test_transform_replaces_the_whole_context():
    p = (
        stepkit()
        .step("fetch", lambda c: {"user": {"id": 7}, "token": "secret", "debug": 1})
        .transform("clean", lambda c: {"user_id": c["user"]["id"]})
        .step("use", lambda c: {"ok": "token" not in c})
    )
    assert p.run({"token": "secret"}) == {"user_id": 7, "ok": True}


def test_transform_returning_empty_dict_clears_on_purpose():
    assert stepkit().transform("clear", lambda c: {}).run({"a": 1}) == {}


def test_transform_returning_none_explains_how_to_clear():
    with pytest.raises(TypeError, match=r"transforms replace the entire context; return \{\} to clear"):
        stepkit().transform("t", lambda c: None).run({"a": 1})


def test_transform_returning_a_non_dict_raises_type_error():
    with pytest.raises(TypeError, match="must return a dict, got list"):
        stepkit().transform("t", lambda c: [1]).run({})


@pytest.mark.parametrize(
    ("condition", "ran"),
    [(True, True), (False, False), (lambda c: c["go"], True), (lambda c: not c["go"], False)],
)
def test_static_and_sync_conditions(condition, ran):
    events = []
    p = stepkit().step("maybe", lambda c: {"ran": True}, condition=condition)
    out = p.run({"go": True}, on_step_complete=lambda e: events.append(e.step_name))
    assert out.get("ran", False) is ran
    # a skipped step emits no event
    assert events == (["maybe"] if ran else [])


def test_async_condition():
    async def allowed(ctx):
        return ctx["role"] == "admin"

    p = stepkit().step("admin-only", lambda c: {"secret": 1}, condition=allowed)
    assert p.run({"role": "admin"}) == {"role": "admin", "secret": 1}
    assert asyncio.run(p.arun({"role": "user"})) == {"role": "user"}


def test_conditions_cannot_mutate_the_context():
    def sneaky(ctx):
        ctx["x"] = 1
        return True

    with pytest.raises(TypeError):
        stepkit().step("s", lambda c: None, condition=sneaky).run({})


def test_run_rejects_a_non_dict_input():
    with pytest.raises(TypeError, match="input must be a dict"):
        stepkit().step("s").run([1, 2])


def test_arun_runs_sync_steps_outside_the_event_loop_thread():
    # Django's ORM refuses to run in a thread with a running event loop; sync steps must not.
    seen = {}

    def sync_step(ctx):
        try:
            asyncio.get_running_loop()
            seen["loop"] = True
        except RuntimeError:
            seen["loop"] = False

    asyncio.run(stepkit().step("s", sync_step).arun({}))
    assert seen == {"loop": False}


def around_recorder():
    """An ``around_step`` that records each call it wraps: (step, item, attempt, entered in the step's thread)."""
    from contextlib import contextmanager

    from stepkit_django.engine.current import current_step_info

    seen = []

    @contextmanager
    def around(info):
        entered = threading.get_ident()
        try:
            yield
        finally:  # a failed attempt too
            seen.append((info.step, info.item, info.attempt, current_step_info() == info, entered))

    return seen, around


def _fails_once():
    calls = []

    def step(ctx):
        calls.append(threading.get_ident())
        if len(calls) == 1:
            raise ConnectionError("first attempt")
        return {"n": len(calls), "thread": calls[-1]}

    return step


def test_around_step_wraps_each_attempt_and_each_item_in_the_thread_that_runs_it():
    seen, around = around_recorder()
    p = (
        stepkit()
        .step("flaky", _fails_once(), retries=1)
        .step("fan", lambda c: {"a": threading.get_ident()}, lambda c: {"b": threading.get_ident()})
        .transform("reshape", lambda c: c)
    )
    result = p.run({}, around_step=around)
    steps = sorted((step, item, attempt, current) for step, item, attempt, current, _ in seen)
    assert steps == [
        ("fan", 0, 1, True),
        ("fan", 1, 1, True),
        ("flaky", None, 1, True),
        ("flaky", None, 2, True),
        ("reshape", None, 1, True),
    ]
    threads = {(step, item): thread for step, item, _a, _c, thread in seen}
    assert threads[("fan", 0)] == result["a"] and threads[("fan", 1)] == result["b"]  # parallel items: their threads


def test_around_step_wraps_async_steps_too():
    seen, around = around_recorder()

    async def fetch(ctx):
        return {"x": 1}

    asyncio.run(stepkit().step("fetch", fetch).arun({}, around_step=around))
    assert [(step, attempt, current) for step, _i, attempt, current, _t in seen] == [("fetch", 1, True)]


def test_around_step_must_be_callable():
    with pytest.raises(TypeError, match="around_step must be callable"):
        stepkit().step("s", lambda c: {}).run({}, around_step="span")
