"""Property tests of the engine: random pipelines of steps, branches, nested pipelines and transforms."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepkit_django import InvalidCheckpoint, decode_checkpoint, otherwise, stepkit, when

# A pipeline is described as data, then built; every step is a deterministic function of the context.
names = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)


def specs(depth):
    leaf = st.one_of(
        st.tuples(st.just("step"), st.integers(0, 9)),
        st.tuples(st.just("transform"), st.integers(0, 9)),
    )
    if depth == 0:
        return leaf
    inner = st.lists(specs(depth - 1), min_size=1, max_size=3)
    return st.one_of(
        leaf,
        st.tuples(st.just("nested"), inner),
        st.tuples(st.just("branch"), st.integers(2, 3), inner, inner),
    )


pipelines = st.lists(specs(2), min_size=1, max_size=5)


def add(i):
    def step(ctx):
        total = sum(v for v in ctx.values() if isinstance(v, int))
        return {f"k{i}": (total * 7 + i) % 101}

    return step


def drop(i):
    def transform(ctx):
        kept = {k: v for k, v in ctx.items() if not (k.startswith("k") and len(ctx) > 3 and k.endswith(str(i)))}
        return {**kept, f"t{i}": len(ctx)}

    return transform


def divisible_by(modulus):
    def predicate(ctx):
        return sum(v for v in ctx.values() if isinstance(v, int)) % modulus == 0

    return predicate


def build(items, prefix="p"):
    p = stepkit(prefix if prefix == "p" else None)
    for n, item in enumerate(items):
        name = f"{item[0]}{n}"
        if item[0] == "step":
            p = p.step(name, add(item[1]))
        elif item[0] == "transform":
            p = p.transform(name, drop(item[1]))
        elif item[0] == "nested":
            p = p.step(name, build(item[1], prefix=f"{prefix}.{n}"))
        else:
            modulus, then, other = item[1], item[2], item[3]
            p = p.branch_on(name, when(divisible_by(modulus), build(then, "x")), otherwise(build(other, "y")))
    return p


def run_collecting(pipeline, data):
    tokens = []
    full = pipeline.run(data, on_step_complete=lambda e: tokens.append((e.step_name, e.checkpoint)))
    return full, tokens


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(items=pipelines, start=st.integers(0, 1000))
def test_resuming_from_every_checkpoint_gives_the_uninterrupted_result(items, start):
    pipeline = build(items)
    full, tokens = run_collecting(pipeline, {"x": start})
    assert tokens, "every pipeline has at least one step"
    for name, token in tokens:
        assert pipeline.run_checkpoint(token) == full, name


@settings(max_examples=60, deadline=None, derandomize=True)
@given(items=pipelines, start=st.integers(0, 1000), data=st.data())
def test_changing_any_single_character_of_a_token_is_refused(items, start, data):
    _, tokens = run_collecting(build(items), {"x": start})
    _, token = data.draw(st.sampled_from(tokens))
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = string.ascii_letters + string.digits + "-_."
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    changed = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidCheckpoint):
        decode_checkpoint(changed)
