"""The immutable pipeline builder: ``stepkit()``, ``when()``, ``otherwise()``.

A :class:`Pipeline` is a tuple of step definitions plus its configuration. Every
builder method returns a new pipeline; the original is never changed, so a
pipeline can be shared, extended and nested freely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .config import check_config

__all__ = [
    "Case",
    "Pipeline",
    "StepDef",
    "StepOptions",
    "otherwise",
    "stepkit",
    "when",
]

Context = dict[str, Any]
StepItem = Callable[[Context], Any]
Predicate = Callable[[Context], Any]
StepKind = Literal["step", "branch", "transform"]

ON_ERROR_MODES = ("throw", "continue", "skip-remaining")
PARALLEL_MODES = ("all", "settled")
MERGE_POLICIES = ("override", "error", "warn", "skip")


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Per-step options; see the README's engine section for their meaning."""

    condition: bool | Predicate | None = None
    on_error: str = "throw"
    log: bool | None = None
    timeout: float | None = None
    retries: int = 0
    retry_delay: float | Callable[[int, BaseException], float] = 0.0
    should_retry: Callable[[BaseException], bool] | None = None
    parallel_mode: str = "all"
    merge_policy: str = "override"
    # Options added by other layers (e.g. ``review`` from the Django runner).
    extra: Mapping[str, Any] = field(default_factory=dict)


# Options other modules may register (name -> validator returning the stored value).
_EXTRA_OPTIONS: dict[str, Callable[[Any], Any]] = {}


def register_step_option(name: str, validate: Callable[[Any], Any]) -> None:
    """Let another layer accept ``name=`` on ``.step()``; stored in ``options.extra``."""
    _EXTRA_OPTIONS[name] = validate


@dataclass(frozen=True, slots=True)
class Case:
    """One case of ``branch_on``: built by :func:`when` or :func:`otherwise`."""

    predicate: Predicate | None
    pipeline: Pipeline
    name: str | None = None

    @property
    def is_otherwise(self) -> bool:
        return self.predicate is None


@dataclass(frozen=True, slots=True)
class StepDef:
    """One entry of a pipeline: a step (with items), a branch or a transform."""

    kind: StepKind
    name: str
    options: StepOptions
    items: tuple[StepItem | Pipeline, ...] = ()
    cases: tuple[Case, ...] = ()
    fn: StepItem | None = None

    def nested(self, index: int) -> bool:
        """Whether item ``index`` of this step is a nested pipeline (else a callable)."""
        return isinstance(self.items[index], Pipeline)

    @property
    def single_callable(self) -> bool:
        """One callable item: the executor calls it directly, with the step's timeout on the call."""
        return len(self.items) == 1 and not isinstance(self.items[0], Pipeline)

    def children(self) -> list[tuple[int, str, Pipeline]]:
        """The nested pipelines of this step as ``(index, display segment, pipeline)``.

        The display segment is what appears between this step's name and the inner
        step name: nothing for nested pipeline items, the case name for branches.
        """
        if self.kind == "branch":
            return [(i, case.name or "", case.pipeline) for i, case in enumerate(self.cases)]
        return [(i, "", item) for i, item in enumerate(self.items) if isinstance(item, Pipeline)]


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"A {what} name must be a non-empty string, got {name!r}")
    if "/" in name:
        raise ValueError(f"{what.capitalize()} name {name!r} must not contain '/': it separates nested step names")
    return name


def _parse_options(kind: StepKind, options: Mapping[str, Any]) -> StepOptions:
    names = {f for f in StepOptions.__dataclass_fields__ if f != "extra"}
    if kind != "step":
        names -= {"parallel_mode", "merge_policy"}
    if kind == "transform":
        names -= {"merge_policy"}
    known = names | set(_EXTRA_OPTIONS)
    unknown = set(options) - known
    if unknown:
        raise TypeError(
            f"Unknown {kind} option(s): {', '.join(sorted(unknown))}. Valid options: {', '.join(sorted(known))}"
        )
    plain = {k: v for k, v in options.items() if k in names}
    extra = {k: _EXTRA_OPTIONS[k](v) for k, v in options.items() if k in _EXTRA_OPTIONS}
    opts = StepOptions(**plain, extra=extra)
    if not (opts.condition is None or isinstance(opts.condition, bool) or callable(opts.condition)):
        raise TypeError(f"condition must be a bool or a callable, got {opts.condition!r}")
    if opts.on_error not in ON_ERROR_MODES:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_MODES)}; got {opts.on_error!r}")
    if opts.parallel_mode not in PARALLEL_MODES:
        raise ValueError(f"parallel_mode must be one of {', '.join(PARALLEL_MODES)}; got {opts.parallel_mode!r}")
    if opts.merge_policy not in MERGE_POLICIES:
        raise ValueError(f"merge_policy must be one of {', '.join(MERGE_POLICIES)}; got {opts.merge_policy!r}")
    if opts.timeout is not None and (isinstance(opts.timeout, bool) or not opts.timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {opts.timeout!r}")
    if isinstance(opts.retries, bool) or not isinstance(opts.retries, int) or opts.retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {opts.retries!r}")
    if not callable(opts.retry_delay) and (isinstance(opts.retry_delay, bool) or not opts.retry_delay >= 0):
        raise ValueError(f"retry_delay must be seconds >= 0 or a callable, got {opts.retry_delay!r}")
    if opts.should_retry is not None and not callable(opts.should_retry):
        raise TypeError("should_retry must be callable(exc) -> bool")
    if opts.log is not None and not isinstance(opts.log, bool):
        raise TypeError(f"log must be a bool, got {opts.log!r}")
    return opts


def _resolve_then(then: Pipeline | Callable[[Pipeline], Pipeline]) -> Pipeline:
    if isinstance(then, Pipeline):
        return then
    if callable(then):
        built = then(stepkit())
        if not isinstance(built, Pipeline):
            raise TypeError(f"A branch builder must return a Pipeline, got {type(built).__name__}")
        return built
    raise TypeError(f"then must be a Pipeline or a callable receiving a builder, got {then!r}")


def when(
    predicate: Predicate,
    then: Pipeline | Callable[[Pipeline], Pipeline],
    name: str | None = None,
) -> Case:
    """A ``branch_on`` case that runs ``then`` when ``predicate(ctx)`` is true."""
    if not callable(predicate):
        raise TypeError(f"when() needs a callable predicate, got {predicate!r}")
    if name is not None:
        _check_name(name, "case")
    return Case(predicate=predicate, pipeline=_resolve_then(then), name=name)


def otherwise(then: Pipeline | Callable[[Pipeline], Pipeline], name: str | None = None) -> Case:
    """The ``branch_on`` case that runs when no ``when`` case matched (named ``default``)."""
    if name is not None:
        _check_name(name, "case")
    return Case(predicate=None, pipeline=_resolve_then(then), name=name)


class Pipeline:
    """An immutable pipeline of named steps. Build one with :func:`stepkit`."""

    __slots__ = ("_steps", "config", "name", "version")

    name: str | None
    version: int
    config: dict[str, Any]
    _steps: tuple[StepDef, ...]

    def __init__(
        self,
        name: str | None = None,
        *,
        version: int = 1,
        config: Mapping[str, Any] | None = None,
        steps: tuple[StepDef, ...] = (),
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"A pipeline name must be a non-empty string or None, got {name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version must be an integer >= 1, got {version!r}")
        self.name = name
        self.version = version
        self.config = check_config(config or {})
        self._steps = steps

    # -- introspection -------------------------------------------------------

    @property
    def steps(self) -> tuple[StepDef, ...]:
        """The step definitions, in order."""
        return self._steps

    def describe(self) -> list[str]:
        """The names of the top-level steps, in order."""
        return [s.name for s in self._steps]

    def __repr__(self) -> str:
        return f"<Pipeline {self.name or '(unnamed)'} v{self.version}: {', '.join(self.describe()) or 'no steps'}>"

    # -- building -------------------------------------------------------------

    def _add(self, step: StepDef) -> Pipeline:
        if any(s.name == step.name for s in self._steps):
            raise ValueError(
                f"Duplicate step name {step.name!r} in pipeline {self.name or '(unnamed)'}: "
                "names identify steps in checkpoints, so they must be unique"
            )
        return Pipeline(self.name, version=self.version, config=self.config, steps=(*self._steps, step))

    def _auto_name(self, prefix: str) -> str:
        return f"{prefix}-{len(self._steps) + 1}"

    def step(self, *args: Any, **options: Any) -> Pipeline:
        """Add a step: ``step("name", fn)``, ``step(fn)``, ``step("name", fn_a, fn_b)`` (parallel),
        ``step("name")`` (no-op); an item may be a nested ``Pipeline``."""
        if not args:
            raise TypeError("step() needs a name, a function, or both")
        if isinstance(args[0], str):
            name, items = _check_name(args[0], "step"), args[1:]
        else:
            name, items = self._auto_name("step"), args
        for item in items:
            if not (isinstance(item, Pipeline) or callable(item)):
                raise TypeError(f"Step {name!r}: items must be callables or Pipelines, got {item!r}")
        return self._add(StepDef("step", name, _parse_options("step", options), items=tuple(items)))

    def branch_on(self, *args: Any, **options: Any) -> Pipeline:
        """Add a branch: ``branch_on("route", when(pred, then), ..., otherwise(then))``."""
        if args and isinstance(args[0], str):
            name, cases = _check_name(args[0], "branch"), args[1:]
        else:
            name, cases = self._auto_name("branch"), args
        if not cases:
            raise TypeError(f"Branch {name!r} needs at least one when(...) or otherwise(...) case")
        named: list[Case] = []
        for position, case in enumerate(cases, start=1):
            if not isinstance(case, Case):
                raise TypeError(f"Branch {name!r}: cases must come from when() or otherwise(), got {case!r}")
            if case.is_otherwise and position != len(cases):
                raise ValueError(f"Branch {name!r}: otherwise() must be the last case")
            default = "default" if case.is_otherwise else f"case-{position}"
            named.append(replace(case, name=case.name or default))
        seen = [c.name for c in named]
        if len(set(seen)) != len(seen):
            raise ValueError(f"Branch {name!r}: case names must be unique, got {seen}")
        return self._add(StepDef("branch", name, _parse_options("branch", options), cases=tuple(named)))

    def transform(self, *args: Any, **options: Any) -> Pipeline:
        """Add a transform: ``transform("name", fn)`` or ``transform(fn)``; replaces the whole context."""
        if args and isinstance(args[0], str):
            name, rest = _check_name(args[0], "transform"), args[1:]
        else:
            name, rest = self._auto_name("transform"), args
        if len(rest) != 1 or not callable(rest[0]):
            raise TypeError(f"Transform {name!r} needs exactly one callable")
        return self._add(StepDef("transform", name, _parse_options("transform", options), fn=rest[0]))

    # -- running (implemented in executor.py) ---------------------------------

    def run(self, input: Mapping[str, Any] | None = None, **config: Any) -> Context:
        """Run the pipeline and return the final context. ``input`` is never mutated."""
        from .executor import run_sync

        return run_sync(self, input, None, config)

    async def arun(self, input: Mapping[str, Any] | None = None, **config: Any) -> Context:
        """Async version of :meth:`run`."""
        from .executor import run_async

        return await run_async(self, input, None, config)

    def run_checkpoint(
        self, checkpoint: str, *, override_data: Mapping[str, Any] | None = None, **config: Any
    ) -> Context:
        """Resume after the step that produced ``checkpoint``, with ``override_data`` shallow-merged."""
        from .executor import resume_from_token, run_sync

        start = resume_from_token(self, checkpoint, override_data)
        return run_sync(self, None, start, config)

    async def arun_checkpoint(
        self, checkpoint: str, *, override_data: Mapping[str, Any] | None = None, **config: Any
    ) -> Context:
        """Async version of :meth:`run_checkpoint`."""
        from .executor import resume_from_token, run_async

        start = resume_from_token(self, checkpoint, override_data)
        return await run_async(self, None, start, config)


def stepkit(name: str | None = None, *, version: int = 1, **config: Any) -> Pipeline:
    """Start a pipeline builder. ``config``: ``log``, ``on_step_complete``, ``on_error``, ``signal``."""
    return Pipeline(name, version=version, config=config)
