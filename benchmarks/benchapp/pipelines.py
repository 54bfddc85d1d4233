"""A 5-step pipeline of trivial steps: what the worker benchmark measures is the machinery."""

from typing import Any

from stepkit_django import register, stepkit


def bump(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"n": ctx.get("n", 0) + 1}


bench_five = register(
    stepkit("bench-five").step("s1", bump).step("s2", bump).step("s3", bump).step("s4", bump).step("s5", bump)
)
