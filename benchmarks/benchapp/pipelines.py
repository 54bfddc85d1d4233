"""A 5-step pipeline of trivial steps: what the worker benchmark measures is the machinery."""

from typing import Any

from stepkit_django import Review, register, stepkit


def bump(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"n": ctx.get("n", 0) + 1}


bench_five = register(
    stepkit("bench-five").step("s1", bump).step("s2", bump).step("s3", bump).step("s4", bump).step("s5", bump)
)


def _twenty() -> Any:
    p = stepkit("bench-twenty")
    for i in range(20):
        p = p.step(f"s{i}", bump)
    return p


bench_twenty = register(_twenty())

bench_pause = register(stepkit("bench-pause").step("s1", bump, review=Review()).step("s2", bump))

bench_twenty_fast = register(_twenty().__class__("bench-twenty-fast", steps=_twenty().steps), durability="pause")

bench_pause_fast = register(
    stepkit("bench-pause-fast").step("s1", bump, review=Review()).step("s2", bump), durability="pause"
)

bench_decide = register(stepkit("bench-decide").step("s1", bump, review=Review()).step("s2", bump))
