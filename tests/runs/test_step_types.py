"""A step sees the same context whichever way the run got to it: straight through, paused, or recovered.

The stored context is JSON, so in the durable runner a step's output is made JSON-ready
(as ``DjangoJSONEncoder`` writes it) before the next step sees it, as a resumed run would
read it back from the database.
"""

import datetime
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from stepkit_django import Review, review, start, stepkit
from stepkit_django.execution.jobs import recover
from stepkit_django.models import PipelineRun
from stepkit_django.status import RunStatus

pytestmark = pytest.mark.django_db

RUN_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def typed_values():
    return {
        "at": datetime.time(9, 30),
        "amount": Decimal("1.50"),
        "day": datetime.date(2026, 3, 14),
        "when": datetime.datetime(2026, 3, 14, 9, 30, tzinfo=datetime.UTC),
        "took": timedelta(minutes=5),
        "ref": RUN_ID,
        "pair": (1, 2),
        "nested": {"at": datetime.time(10, 0), "prices": (Decimal("2.5"),)},
    }


#: What the database gives back for ``typed_values()``: what every step after the first must see.
STORED = {
    "at": "09:30:00",
    "amount": "1.50",
    "day": "2026-03-14",
    "when": "2026-03-14T09:30:00Z",
    "took": "P0DT00H05M00S",
    "ref": str(RUN_ID),
    "pair": [1, 2],
    "nested": {"at": "10:00:00", "prices": ["2.5"]},
}


def observed(ctx):
    """The values of the typed keys with the type of each (and of each nested value)."""

    def typed(value):
        if isinstance(value, dict):
            return {k: typed(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, [typed(v) for v in value])
        return (type(value).__name__, value)

    return {key: typed(ctx[key]) for key in STORED}


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing records a failure."""


def typed_pipeline(name, seen, *, pause=False, crash=False):
    """Step 1 returns typed values; step 2 records what it sees (and dies on its first call with ``crash``)."""

    def look(ctx):
        seen.append(observed(ctx))
        if crash and len(seen) == 1:
            raise Crash
        return {"looked": True}

    return stepkit(name).step("make", lambda ctx: typed_values(), review=Review() if pause else None).step("look", look)


@pytest.fixture(params=["step", "pause"])
def durability(request):
    return request.param


def straight_through(registered_pipelines, people, durability):
    seen = []
    registered_pipelines(typed_pipeline("typed-straight", seen), durability=durability)
    run = start("typed-straight", {}, user=people.alice)
    assert run.status == RunStatus.COMPLETED, run.error
    return seen, run


def paused_and_approved(registered_pipelines, people, durability):
    seen = []
    registered_pipelines(typed_pipeline("typed-paused", seen, pause=True), durability=durability)
    run = start("typed-paused", {}, user=people.alice)
    assert run.status == RunStatus.PAUSED and seen == []
    review.approve(run.checkpoints.get(), people.bob)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    return seen, run


def crashed_and_recovered(registered_pipelines, people, durability):
    seen = []
    registered_pipelines(typed_pipeline("typed-crashed", seen, crash=True), durability=durability)
    with pytest.raises(Crash):
        start("typed-crashed", {}, user=people.alice)
    run = PipelineRun.objects.get(pipeline_name="typed-crashed")
    PipelineRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert recover() == 1  # re-queued and, with the inline executor, finished right here
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert len(seen) == 2  # the crashed attempt, in the first process; the one after recovery
    return seen, run


PATHS = [straight_through, paused_and_approved, crashed_and_recovered]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__)
def test_the_next_step_sees_the_stored_types(path, registered_pipelines, people, durability):
    seen, run = path(registered_pipelines, people, durability)
    expected = observed(STORED)
    assert all(s == expected for s in seen), seen
    assert observed(run.context) == expected
    assert observed(PipelineRun.objects.get(pk=run.pk).context) == expected


def test_every_path_shows_a_step_identical_values_and_types(registered_pipelines, people, durability):
    sightings = {p.__name__: p(registered_pipelines, people, durability)[0] for p in PATHS}
    first = sightings["straight_through"][0]
    assert first["at"] == ("str", "09:30:00") and first["amount"] == ("str", "1.50")
    for name, seen in sightings.items():
        for sighting in seen:
            assert sighting == first, name


def test_every_kind_of_step_output_is_stored_typed_before_the_next_step(registered_pipelines):
    seen = []
    inner = stepkit().step("deep", lambda ctx: {"deep": datetime.time(7, 0)})
    registered_pipelines(
        stepkit("typed-kinds")
        .step("parallel", lambda ctx: {"left": Decimal("1.0")}, lambda ctx: {"right": (1, datetime.date(2026, 1, 2))})
        .transform("transform", lambda ctx: {**ctx, "moved": timedelta(seconds=90)})
        .step("nested", inner)
        .step("look", lambda ctx: seen.append(dict(ctx)))
    )
    run = start("typed-kinds", {})
    assert run.status == RunStatus.COMPLETED, run.error
    assert seen == [{"left": "1.0", "right": [1, "2026-01-02"], "moved": "P0DT00H01M30S", "deep": "07:00:00"}]


def test_a_step_output_that_cannot_be_stored_fails_that_step(registered_pipelines):
    after = []
    registered_pipelines(
        stepkit("typed-bad")
        .step("a", lambda ctx: {"ok": 1})
        .step("b", lambda ctx: {"user": {"created": object()}})
        .step("c", lambda ctx: after.append(ctx))
    )
    run = start("typed-bad", {})
    assert run.status == RunStatus.FAILED
    assert "context['user']['created']" in run.error
    assert run.events.get(action="run_failed").data["step"] == "b"
    assert after == [] and PipelineRun.objects.get(pk=run.pk).current_step == "a"


def test_the_engine_without_django_keeps_the_returned_types():
    seen = []
    pipeline = stepkit().step("make", lambda ctx: typed_values()).step("look", lambda ctx: seen.append(dict(ctx)))
    assert pipeline.run({}) == typed_values()
    assert seen == [typed_values()]
    # the option the runner uses is there for any run that wants stored types
    from stepkit_django.engine.context import to_json_ready

    assert pipeline.run({}, prepare_output=to_json_ready) == STORED


def test_prepare_output_must_be_callable():
    with pytest.raises(TypeError, match="prepare_output must be callable"):
        stepkit().step("s").run({}, prepare_output="yes")
