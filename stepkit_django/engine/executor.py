"""The engine core: runs a pipeline's steps, written once for both drivers.

Every function here is a generator that yields operations (see ``drivers.py``)
and returns its result with ``return``. The core never blocks and never awaits,
so ``run()`` and ``arun()`` share one implementation of the semantics.

Context handling, which the per-step cost depends on:

* the working context of a pipeline is never mutated in place; each step builds
  a new top-level dict (a shallow merge), so an event can refer to the context
  of its step without copying it;
* a step function receives one deep copy (``clone``) of the context, so
  mutating what it was given cannot change pipeline state;
* ``event.context`` and ``event.checkpoint`` are computed only when read;
* the run option ``prepare_output`` (a function of a step's output dict, e.g.
  ``to_json_ready``) is applied to each step's output before it is merged, so
  the next step sees the values as they would come back from storage; without
  it outputs are merged as returned.

The run option ``around_step`` (a function of a ``StepInfo`` returning a context
manager) is entered around each call of a step function, each attempt and each item
of a parallel step, in the thread that runs it: the Django runner opens a span there.
Without it a step costs one ``is None`` more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from .checkpoint import decode_checkpoint
from .config import check_config
from .context import changed_keys, clone, merge_output
from .current import StepInfo
from .drivers import Attempt, Call, Parallel, Sleep, TimedOut, drive_async, drive_sync
from .errors import InvalidCheckpoint, PipelineAborted, StepTimeout
from .events import StepCompleteEvent
from .logs import RunLog

if TYPE_CHECKING:  # the builder imports this module to run pipelines: types only, no cycle
    from .builder import Pipeline, StepDef, StepItem

__all__ = [
    "Resume",
    "first_of",
    "iter_positions",
    "resume_before",
    "resume_from_token",
    "resume_point",
    "run_async",
    "run_sync",
]

Context = dict[str, Any]
Core = Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Resume:
    """Where to resume: ``position`` indices and the contexts of each pipeline level, innermost last."""

    position: tuple[int, ...]
    contexts: tuple[Context, ...]


#: Options of one run only (not of a pipeline declaration), handled here rather than by the builder.
RUN_ONLY_KEYS = ("prepare_output", "around_step")


class _RunState:
    __slots__ = ("around", "complete_handlers", "error_handlers", "log", "pipeline", "prepare", "signal")

    def __init__(self, pipeline: Pipeline, run_config: Mapping[str, Any]) -> None:
        prepare = run_config.get("prepare_output")
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare_output must be callable, got {prepare!r}")
        around = run_config.get("around_step")
        if around is not None and not callable(around):
            raise TypeError(f"around_step must be callable, got {around!r}")
        #: Entered around each call of a step function (``Call.around``); None: nothing.
        self.around: Callable[[StepInfo], AbstractContextManager[Any]] | None = around
        run_config = check_config({k: v for k, v in run_config.items() if k not in RUN_ONLY_KEYS})
        base = pipeline.config
        self.pipeline = pipeline
        #: Applied to each step's output (and a transform's new context) before it is merged; None: as returned.
        self.prepare: Callable[[Context], Context] | None = prepare
        self.complete_handlers: tuple[Callable[..., Any], ...] = tuple(
            h for h in (base.get("on_step_complete"), run_config.get("on_step_complete")) if h is not None
        )
        self.error_handlers: tuple[Callable[..., Any], ...] = tuple(
            h for h in (base.get("on_error"), run_config.get("on_error")) if h is not None
        )
        self.signal = run_config.get("signal", base.get("signal"))
        self.log = RunLog(run_config.get("log", base.get("log", False)))

    def check_signal(self, path: str) -> None:
        if self.signal is not None and self.signal.is_set():
            raise PipelineAborted(f"Pipeline aborted by its signal before step '{path}'")


def _new_keys(old: Context, new: Context) -> list[str]:
    return [k for k, v in new.items() if old.get(k, _MISSING) is not v]


_MISSING = object()


def _as_output(value: Any, path: str) -> Context:
    if value is None:
        return {}
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Step function must return a dict or None, got {type(value).__name__} (step '{path}')")


def _as_new_context(value: Any, path: str) -> Context:
    if value is None:
        raise TypeError(
            f"Transform '{path}' returned None: transforms replace the entire context; "
            "return {} to clear it on purpose"
        )
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Transform '{path}' must return a dict, got {type(value).__name__}")


# -- pipelines -------------------------------------------------------------------


def _pipeline(
    rs: _RunState,
    pipeline: Pipeline,
    ctx: Context,
    prefix: str,
    pos_prefix: tuple[int, ...],
    outer: tuple[Context, ...],
    resume: Resume | None,
) -> Core:
    """Run ``pipeline``'s steps; return ``(context, stopped)``."""
    steps = pipeline.steps
    start = 0
    inner: Resume | None = None
    if resume is not None:
        index = resume.position[0]
        ctx = resume.contexts[0]
        for skipped in steps[: max(index, 0)]:
            rs.log.resume_skipped(prefix + skipped.name)
        if len(resume.position) == 1:
            if index >= 0:  # -1: before the first step (a run sent back to it runs it again)
                rs.log.resume_skipped(prefix + steps[index].name)
            start = index + 1
        else:
            start = index
            inner = Resume(resume.position[1:], resume.contexts[1:])

    for index in range(start, len(steps)):
        step = steps[index]
        opts = step.options
        path = prefix + step.name
        rs.check_signal(path)
        child_resume = inner if index == start else None
        if child_resume is None and opts.condition is not None:
            condition = opts.condition
            ok = condition if isinstance(condition, bool) else (yield Call(condition, (MappingProxyType(ctx),)))
            if not ok:
                rs.log.skipped(path, opts.log)
                continue
        rs.log.step_start(path, step.kind, opts.log)
        started = time.perf_counter()
        outcome, new_ctx, inner_stopped = yield from _step(
            rs, step, ctx, path, (*pos_prefix, index), outer, child_resume, started
        )
        if outcome == "continue":
            continue
        if outcome == "skip-remaining":
            return ctx, False
        duration = time.perf_counter() - started
        if rs.log.enabled or opts.log:
            rs.log.step_done(path, duration, _new_keys(ctx, new_ctx), opts.log)
        ctx = new_ctx
        if inner_stopped:  # a nested step stopped the pipeline: merge (done) and stop, no container event
            return ctx, True
        if rs.complete_handlers:
            event = StepCompleteEvent(
                pipeline=rs.pipeline,
                step=step,
                step_name=path,
                position=(*pos_prefix, index),
                duration=duration,
                contexts=(*outer, ctx),
            )
            for handler in rs.complete_handlers:
                yield Call(handler, (event,))
            if event.stopped:
                rs.log.stopped(path)
                return ctx, True
    return ctx, False


def _step(
    rs: _RunState,
    step: StepDef,
    ctx: Context,
    path: str,
    pos: tuple[int, ...],
    outer: tuple[Context, ...],
    resume: Resume | None,
    started: float,
) -> Core:
    """Run one step with its retries; return ``(outcome, context, stopped)``.

    ``outcome`` is ``"ok"``, or the ``on_error`` mode applied after a failure.
    """
    opts = step.options
    attempt = 0
    while True:
        attempt += 1
        try:
            body = _attempt(rs, step, ctx, path, pos, outer, resume, attempt)
            if opts.timeout is not None and _needs_attempt_wrapper(step):
                new_ctx, stopped = yield Attempt(body, opts.timeout)
            else:
                new_ctx, stopped = yield from body
            return "ok", new_ctx, stopped
        except PipelineAborted:
            raise
        except Exception as caught:
            exc: Exception = caught
            if isinstance(exc, TimedOut):
                exc = StepTimeout(f"Step '{path}' timed out after {opts.timeout:g}s")
            if attempt <= opts.retries and (opts.should_retry is None or opts.should_retry(exc)):
                delay = opts.retry_delay(attempt, exc) if callable(opts.retry_delay) else opts.retry_delay
                rs.log.retrying(path, attempt, exc, delay)
                if delay > 0:
                    yield Sleep(delay)
                rs.check_signal(path)
                continue
            for handler in rs.error_handlers:
                yield Call(handler, (path, exc))
            rs.log.failed(path, time.perf_counter() - started, exc, opts.on_error, opts.log)
            if opts.on_error == "throw":
                if exc is caught:
                    raise caught
                raise exc from None
            return opts.on_error, ctx, False


def _needs_attempt_wrapper(step: StepDef) -> bool:
    # A single callable gets its timeout on the Call itself (so an async step is cancelled).
    return not (step.kind == "transform" or step.single_callable)


def _attempt(
    rs: _RunState,
    step: StepDef,
    ctx: Context,
    path: str,
    pos: tuple[int, ...],
    outer: tuple[Context, ...],
    resume: Resume | None,
    attempt: int,
) -> Core:
    """One attempt of a step; return ``(new context, stopped)``."""
    opts = step.options
    timeout = opts.timeout
    info = StepInfo(rs.pipeline.name, path, None, attempt)
    if step.kind == "transform":
        assert step.fn is not None
        new_ctx = _as_new_context((yield Call(step.fn, (clone(ctx),), timeout, info, rs.around)), path)
        return (new_ctx if rs.prepare is None else rs.prepare(new_ctx)), False
    if step.kind == "branch":
        return (yield from _branch(rs, step, ctx, path, pos, outer, resume))
    items = step.items
    if not items:
        return ctx, False
    if step.single_callable:
        output = _as_output((yield Call(cast("StepItem", items[0]), (clone(ctx),), timeout, info, rs.around)), path)
        if output and rs.prepare is not None:
            output = rs.prepare(output)
        return merge_output(ctx, output, opts.merge_policy, path, rs.log.collision), False

    subs = [_item(rs, item, step.nested(i), i, ctx, path, pos, outer, resume, attempt) for i, item in enumerate(items)]
    if len(subs) == 1:
        outcomes = [(True, (yield from subs[0]))]
    else:
        outcomes = yield Parallel(subs, fail_fast=opts.parallel_mode == "all")
    stopped = False
    for i, (ok, value) in enumerate(outcomes):
        if not ok:
            rs.log.item_failed(path, i, value)
            continue
        output, item_stopped = value
        ctx = merge_output(ctx, output, opts.merge_policy, path, rs.log.collision)
        stopped = stopped or item_stopped
    return ctx, stopped


def _item(
    rs: _RunState,
    item: Callable[..., Any] | Pipeline,
    nested: bool,
    index: int,
    ctx: Context,
    path: str,
    pos: tuple[int, ...],
    outer: tuple[Context, ...],
    resume: Resume | None,
    attempt: int,
) -> Core:
    """One item of a step (``nested``: a pipeline); return ``(output to merge, stopped)``."""
    if not nested:
        info = StepInfo(rs.pipeline.name, path, index, attempt)
        output = _as_output((yield Call(cast("StepItem", item), (clone(ctx),), None, info, rs.around)), path)
        return (rs.prepare(output) if output and rs.prepare is not None else output), False
    child = None
    if resume is not None and resume.position[0] == index:
        child = Resume(resume.position[1:], resume.contexts)
    start = ctx if child is not None else clone(ctx)
    final, stopped = yield from _pipeline(
        rs, cast("Pipeline", item), start, f"{path}/", (*pos, index), (*outer, ctx), child
    )
    return changed_keys(ctx, final), stopped


def _branch(
    rs: _RunState,
    step: StepDef,
    ctx: Context,
    path: str,
    pos: tuple[int, ...],
    outer: tuple[Context, ...],
    resume: Resume | None,
) -> Core:
    """Run the first matching case of a branch; return ``(new context, stopped)``."""
    chosen = None
    child = None
    if resume is not None:
        chosen = resume.position[0]
        child = Resume(resume.position[1:], resume.contexts)
    else:
        view = MappingProxyType(ctx)
        for index, case in enumerate(step.cases):
            if case.predicate is None or (yield Call(case.predicate, (view,))):
                chosen = index
                break
    rs.log.branch_case(path, None if chosen is None else step.cases[chosen].name, step.options.log)
    if chosen is None:
        return ctx, False
    case = step.cases[chosen]
    start = ctx if child is not None else clone(ctx)
    prefix = f"{path}/{case.name}/"
    final, stopped = yield from _pipeline(rs, case.pipeline, start, prefix, (*pos, chosen), (*outer, ctx), child)
    return merge_output(ctx, changed_keys(ctx, final), step.options.merge_policy, path, rs.log.collision), stopped


# -- entry points ----------------------------------------------------------------


def _start(
    pipeline: Pipeline, input: Mapping[str, Any] | None, resume: Resume | None, config: Mapping[str, Any]
) -> tuple[_RunState, Core]:
    rs = _RunState(pipeline, config)
    if input is not None and not isinstance(input, Mapping):
        raise TypeError(f"Pipeline input must be a dict, got {type(input).__name__}")
    ctx = clone(dict(input)) if input else {}
    resumed_at = None
    if resume is not None:
        resumed_at = display_path(pipeline, first_of(resume.position))
    rs.log.start(pipeline.name, ctx.keys(), resumed_at)
    return rs, _pipeline(rs, pipeline, ctx, "", (), (), resume)


def run_sync(
    pipeline: Pipeline, input: Mapping[str, Any] | None, resume: Resume | None, config: Mapping[str, Any]
) -> Context:
    """Run (or resume) ``pipeline`` in this thread and return the final context."""
    started = time.perf_counter()
    rs, core = _start(pipeline, input, resume, config)
    ctx, stopped = drive_sync(core)
    rs.log.finish(time.perf_counter() - started, stopped)
    return ctx  # type: ignore[no-any-return]


async def run_async(
    pipeline: Pipeline, input: Mapping[str, Any] | None, resume: Resume | None, config: Mapping[str, Any]
) -> Context:
    """Run (or resume) ``pipeline`` on the running event loop and return the final context."""
    started = time.perf_counter()
    rs, core = _start(pipeline, input, resume, config)
    ctx, stopped = await drive_async(core)
    rs.log.finish(time.perf_counter() - started, stopped)
    return ctx  # type: ignore[no-any-return]


# -- positions and checkpoints ------------------------------------------------------


def iter_positions(
    pipeline: Pipeline, prefix: str = "", pos: tuple[int, ...] = ()
) -> Generator[tuple[str, tuple[int, ...]], None, None]:
    """Every step a checkpoint can name, as ``(display path, position)``, nested ones included."""
    for index, step in enumerate(pipeline.steps):
        yield prefix + step.name, (*pos, index)
        for child, segment, sub in step.children():
            sub_prefix = f"{prefix}{step.name}/{segment + '/' if segment else ''}"
            yield from iter_positions(sub, sub_prefix, (*pos, index, child))


def resume_before(position: tuple[int, ...]) -> tuple[int, ...]:
    """The resume position that runs the step at ``position`` (again): the one before it at its level.

    Its last index is ``-1`` when the step is the first of its pipeline (resume "before the first step").
    """
    return (*position[:-1], position[-1] - 1)


def first_of(position: tuple[int, ...]) -> tuple[int, ...]:
    """The position that names a resume ``position``: itself, or the first step of its level for ``-1``."""
    return position if not position or position[-1] >= 0 else (*position[:-1], 0)


def display_path(pipeline: Pipeline, position: tuple[int, ...]) -> str:
    for path, pos in iter_positions(pipeline):
        if pos == position:
            return path
    raise KeyError(position)


def resume_from_token(pipeline: Pipeline, token: str, override_data: Mapping[str, Any] | None) -> Resume:
    """Verify ``token`` for ``pipeline`` and build the resume point, with ``override_data`` merged."""
    if override_data is not None and not isinstance(override_data, Mapping):
        raise TypeError(f"override_data must be a dict, got {type(override_data).__name__}")
    return resume_point(pipeline, decode_checkpoint(token), override_data)


def resume_point(pipeline: Pipeline, payload: Mapping[str, Any], override_data: Mapping[str, Any] | None) -> Resume:
    """Build the resume point of a decoded checkpoint ``payload`` for ``pipeline``."""
    if payload["pipeline"] != pipeline.name:
        raise InvalidCheckpoint(
            f"Checkpoint was made by pipeline {payload['pipeline']!r}, not by {pipeline.name!r}: "
            "resume it with the pipeline that made it"
        )
    path = payload["step"]
    stored = tuple(payload["position"])
    known = dict(iter_positions(pipeline))
    by_position = {pos: p for p, pos in known.items()}
    if by_position.get(stored) == path:
        position = stored
    elif path in known:
        position = known[path]
    else:
        raise InvalidCheckpoint(
            f"Checkpoint step {path!r} is not a step of pipeline {pipeline.name!r}; "
            f"known steps: {', '.join(known) or '(none)'}"
        )
    contexts = [*payload["outer_contexts"], payload["context"]]
    if len(contexts) != (len(position) + 1) // 2 or not all(isinstance(c, dict) for c in contexts):
        raise InvalidCheckpoint(f"Checkpoint is not decodable: its contexts do not match step {path!r}")
    if override_data:
        contexts[-1] = {**contexts[-1], **override_data}
    return Resume(position, tuple(contexts))
