"""Property test of durable runs: a run that crashes at any step resumes, from what the database
holds, to the result of the uninterrupted run (on PostgreSQL, where steps save only changed keys)."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepkit_django import otherwise, register, resume_run, start, stepkit, unregister, when
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus
from tests.engine.test_properties import add, divisible_by, specs

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NAMES = itertools.count()
# Mostly top-level steps and transforms (where saves merge changed keys), some nested pipelines and branches.
leaves = st.tuples(st.sampled_from(["step", "step", "transform"]), st.integers(0, 9))
pipelines = st.lists(st.one_of(leaves, leaves, leaves, specs(1)), min_size=2, max_size=8)


def drop(i):
    """A transform that removes a key whenever there is one to remove (and records that it ran)."""

    def transform(ctx):
        keys = sorted(k for k in ctx if k.startswith("k"))
        return {**{k: v for k, v in ctx.items() if not keys or k != keys[i % len(keys)]}, f"t{i}": len(ctx)}

    return transform


class Crash(BaseException):
    """The process dies mid-step: nothing the runner catches, nothing recorded."""


class Counter:
    """Counts step and transform calls; raises Crash once, at call number ``crash_at``."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.calls, self.crash_at = 0, crash_at

    def wrap(self, fn):
        def counted(ctx):
            self.calls += 1
            if self.calls == self.crash_at:
                self.crash_at = None  # once: the resumed run goes through
                raise Crash
            return fn(ctx)

        return counted


def build(items, counter, name=None):
    p = stepkit(name)
    for n, item in enumerate(items):
        label = f"{item[0]}{n}"
        if item[0] == "step":
            p = p.step(label, counter.wrap(add(item[1])))
        elif item[0] == "transform":
            p = p.transform(label, counter.wrap(drop(item[1])))
        elif item[0] == "nested":
            p = p.step(label, build(item[1], counter))
        else:
            modulus, then, other = item[1], item[2], item[3]
            p = p.branch_on(label, when(divisible_by(modulus), build(then, counter)), otherwise(build(other, counter)))
    return p


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(items=pipelines, first=st.integers(0, 1000), data=st.data())
def test_a_run_crashed_at_any_step_resumes_from_the_database_to_the_uninterrupted_result(items, first, data):
    counting = Counter()
    expected = build(items, counting).run({"x": first})
    crash_at = data.draw(st.integers(1, counting.calls), label="crash at call")
    name = f"durable-property-{next(NAMES)}"
    register(build(items, Counter(crash_at), name))
    try:
        with pytest.raises(Crash):
            start(name, {"x": first})
        run = PipelineRun.objects.get(pipeline_name=name)
        assert run.status == RunStatus.RUNNING  # as a dead process leaves it
        resumed = resume_run(run, force=True)
        assert resumed.status == RunStatus.COMPLETED, resumed.error
        assert PipelineRun.objects.get(pk=run.pk).context == expected
    finally:
        unregister(name)
