"""The registry: a name taken by one pipeline is not silently given to another."""

import threading

import pytest

import stepkit_django
from stepkit_django import (
    PipelineAlreadyRegistered,
    PipelineChanged,
    Review,
    StepkitError,
    get_pipeline,
    register,
    review,
    start,
    stepkit,
    unregister,
)
from stepkit_django.registry import get_registration
from stepkit_django.status import RunStatus


def paused_pipeline(version=1, name="taken"):
    return stepkit(name, version=version).step("draft", lambda c: {"draft": True}, review=Review()).step("publish")


def test_the_exception_is_a_named_stepkit_error_exported_by_the_package():
    assert issubclass(PipelineAlreadyRegistered, StepkitError)
    assert "PipelineAlreadyRegistered" in stepkit_django.__all__
    assert stepkit_django.PipelineAlreadyRegistered is PipelineAlreadyRegistered


def test_registering_the_same_pipeline_again_is_a_no_op(registered_pipelines):
    first = paused_pipeline()
    assert registered_pipelines(first) is first
    assert registered_pipelines(first) is first
    assert register(first) is first
    assert get_pipeline("taken") is first


def test_another_pipeline_under_a_taken_name_is_refused_and_the_first_stays(registered_pipelines):
    first = registered_pipelines(paused_pipeline())
    with pytest.raises(PipelineAlreadyRegistered, match=r"'taken'.*unregister\('taken'\).*replace=True"):
        register(paused_pipeline(version=2))
    assert get_pipeline("taken") is first
    # an identical declaration is still another object: refused too (a module imported twice, say)
    with pytest.raises(PipelineAlreadyRegistered):
        register(paused_pipeline())
    assert get_pipeline("taken") is first


def test_the_same_pipeline_with_other_options_is_refused(registered_pipelines):
    first = registered_pipelines(paused_pipeline(version=2))
    with pytest.raises(PipelineAlreadyRegistered, match=r"other options.*durability='step'"):
        register(first, durability="pause")
    with pytest.raises(PipelineAlreadyRegistered, match="other options"):
        register(first, migrations={1: lambda ctx, step: ctx})
    assert get_registration("taken").durability == "step"
    assert get_registration("taken").migrations == {}


def test_replace_true_replaces_on_purpose(registered_pipelines):
    registered_pipelines(paused_pipeline())
    second = paused_pipeline(version=2)
    assert register(second, replace=True, durability="pause") is second
    assert get_pipeline("taken") is second
    assert get_registration("taken").durability == "pause"


def test_unregister_frees_the_name(registered_pipelines):
    registered_pipelines(paused_pipeline())
    unregister("taken")
    second = registered_pipelines(paused_pipeline(version=2))
    assert get_pipeline("taken") is second


def test_a_refused_registration_leaves_paused_runs_resumable(people, registered_pipelines):
    """The hole: the second registration used to replace the first, and its checkpoints failed."""
    registered_pipelines(paused_pipeline())
    run = start("taken", {}, user=people.alice)
    assert run.status == RunStatus.PAUSED
    with pytest.raises(PipelineAlreadyRegistered):
        register(paused_pipeline(version=2))
    review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.context.pop("review")["by"] == "bob"
    assert run.context == {"draft": True}


def test_a_replaced_pipeline_is_what_old_checkpoints_meet(people, registered_pipelines):
    registered_pipelines(paused_pipeline())
    run = start("taken", {}, user=people.alice)
    register(paused_pipeline(version=2), replace=True)
    with pytest.raises(PipelineChanged, match="from version 1 to 2"):
        review.approve(run.checkpoints.get(), people.bob)


def test_concurrent_registrations_of_one_name_leave_exactly_one_winner(registered_pipelines):
    registered_pipelines(stepkit("raced").step("s"))  # for the fixture's clean-up
    unregister("raced")
    candidates = [stepkit("raced").step(f"s{i}") for i in range(8)]
    barrier = threading.Barrier(len(candidates))
    won, refused = [], []

    def attempt(pipeline):
        barrier.wait()
        try:
            won.append(register(pipeline))
        except PipelineAlreadyRegistered:
            refused.append(pipeline)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == len(candidates) - 1
    assert get_pipeline("raced") is won[0]
