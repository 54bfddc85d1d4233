"""The immutable builder: naming, options and validation."""

import pytest

from stepkit_django import Pipeline, otherwise, stepkit, when


def noop(ctx):
    return None


def test_every_builder_method_returns_a_new_pipeline_and_leaves_the_original_unchanged():
    base = stepkit("p").step("a", noop)
    extended = base.step("b", noop).branch_on("r", otherwise(stepkit())).transform("t", lambda c: c)
    assert base.describe() == ["a"]
    assert extended.describe() == ["a", "b", "r", "t"]
    assert base is not extended
    assert base.run({}) == {}


def test_auto_names_count_every_kind_of_step():
    p = stepkit().step(noop).transform(lambda c: c).branch_on(otherwise(stepkit())).step(noop)
    assert p.describe() == ["step-1", "transform-2", "branch-3", "step-4"]


def test_step_without_items_is_a_no_op():
    assert stepkit().step("nothing").run({"a": 1}) == {"a": 1}


def test_branch_cases_are_named_by_position_and_otherwise_is_default():
    p = stepkit().branch_on(
        "route",
        when(lambda c: False, stepkit().step("x", noop)),
        when(lambda c: False, stepkit().step("y", noop), name="named"),
        when(lambda c: False, stepkit().step("z", noop)),
        otherwise(stepkit().step("w", noop)),
    )
    assert [c.name for c in p.steps[0].cases] == ["case-1", "named", "case-3", "default"]


def test_then_may_be_a_callable_receiving_a_fresh_builder():
    case = when(lambda c: True, lambda b: b.step("inner", lambda c: {"hit": True}))
    assert isinstance(case.pipeline, Pipeline)
    assert stepkit().branch_on("r", case).run({}) == {"hit": True}


def test_duplicate_step_names_are_refused():
    with pytest.raises(ValueError, match="Duplicate step name 'a'"):
        stepkit().step("a", noop).step("a", noop)


def test_step_names_cannot_contain_a_slash():
    with pytest.raises(ValueError, match="must not contain '/'"):
        stepkit().step("a/b", noop)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"on_error": "explode"}, "on_error must be one of"),
        ({"parallel_mode": "some"}, "parallel_mode must be one of"),
        ({"merge_policy": "merge"}, "merge_policy must be one of"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"retries": -1}, "retries must be an integer"),
        ({"retry_delay": -1}, "retry_delay must be"),
        ({"colour": "red"}, "Unknown step option"),
    ],
)
def test_invalid_step_options_raise_clear_errors(options, error):
    with pytest.raises((ValueError, TypeError), match=error):
        stepkit().step("s", noop, **options)


def test_items_must_be_callables_or_pipelines():
    with pytest.raises(TypeError, match="items must be callables or Pipelines"):
        stepkit().step("s", 42)


def test_otherwise_must_be_last():
    with pytest.raises(ValueError, match="otherwise\\(\\) must be the last case"):
        stepkit().branch_on("r", otherwise(stepkit()), when(lambda c: True, stepkit()))


def test_unknown_config_keys_are_refused_at_build_and_run_time():
    with pytest.raises(TypeError, match="Unknown pipeline option"):
        stepkit(on_complete=noop)
    with pytest.raises(TypeError, match="Unknown pipeline option"):
        stepkit().run({}, onStepComplete=noop)


def test_signal_must_have_is_set():
    with pytest.raises(TypeError, match="is_set"):
        stepkit(signal=object())


def test_describe_lists_top_level_steps_only():
    inner = stepkit().step("i", noop)
    assert stepkit().step("outer", inner).step("end", noop).describe() == ["outer", "end"]
