"""Spans: one per run advance, one per call of a step function, one per decision; and the trace context
that travels with a run's id to the worker that advances it.

* ``stepkit.advance``: a process executing a run until it pauses or ends (attributes ``stepkit.run.id``,
  ``stepkit.pipeline``, and at its end ``stepkit.run.status``). In the calling process (the ``"inline"``
  executor) it is a child of the current span. In a worker it is a new trace with a **link** to the
  span that enqueued the run (the approval that resumed it, the request that started it), not a child
  of it: the worker advances the run later, maybe hours after the approval, and maybe more than once
  (a re-delivered message, a run recovered from a dead worker), so the approval's trace stays short
  and whole, and each advance is a trace of its own that points back to its cause.
* ``stepkit.step``: each call of a step function, in the thread that runs it, so spans the step's own
  code opens are its children (``stepkit.run.id``, ``stepkit.pipeline``, ``stepkit.step``,
  ``stepkit.step.attempt``, and ``stepkit.step.item`` for an item of a parallel step).
* ``stepkit.decision``: an approval, a rejection, a request for changes, an expiry
  (``stepkit.decision.action``, ``stepkit.checkpoint.id``, and once decided ``stepkit.run.id``,
  ``stepkit.pipeline``, ``stepkit.step``, ``stepkit.decision.outcome``). An expiry has a span only when
  this process applies it (not when another sweeper did first); an escalation's outcome is ``escalated``.

No attribute, event or status holds a value of a run's context; a failure is recorded by its
exception's type only (``error.type``), since its message may quote the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from functools import cache, wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import api
from .api import ACTION, ATTEMPT, CHECKPOINT_ID, ITEM, OUTCOME, PIPELINE, RUN_ID, RUN_STATUS, STEP

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Span, Tracer

    from ..engine.current import StepInfo
    from ..models import Checkpoint, PipelineRun

__all__ = ["advancing", "carrier", "decided", "deciding", "decision", "in_current_context", "step_spans"]

P = ParamSpec("P")
R = TypeVar("R")

_NOTHING: AbstractContextManager[None] = nullcontext()

#: The decision span this context is in (what :func:`decided` completes).
_DECISION: ContextVar[Span | None] = ContextVar("stepkit_decision_span", default=None)


@contextmanager
def _span(
    tracer: Tracer, name: str, attributes: dict[str, Any], links: list[Any] | None = None, kind: Any = None
) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    # The SDK would record the exception's message and traceback, which may quote context values.
    with tracer.start_as_current_span(
        name,
        kind=kind or SpanKind.INTERNAL,
        attributes=attributes,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            error = type(exc).__qualname__
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
            raise


def _links(trace_context: Mapping[str, str] | None) -> list[Any]:
    """A link to the span whose context ``trace_context`` carries (W3C ``traceparent``), if there is one."""
    if not trace_context:
        return []
    from opentelemetry import trace
    from opentelemetry.trace import Link

    span_context = trace.get_current_span(_propagator().extract(dict(trace_context))).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def advancing(run: PipelineRun, trace_context: Mapping[str, str] | None = None) -> AbstractContextManager[Any]:
    """The ``stepkit.advance`` span around executing ``run``, linked to ``trace_context`` (what the enqueue
    carried); a context manager that does nothing when no span would be recorded."""
    tracer = api.tracer()
    if tracer is None:
        return _NOTHING
    return _advance_span(tracer, run, _links(trace_context))


@contextmanager
def _advance_span(tracer: Tracer, run: PipelineRun, links: list[Any]) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes = {RUN_ID: str(run.pk), PIPELINE: run.pipeline_name}
    with _span(tracer, "stepkit.advance", attributes, links, SpanKind.CONSUMER if links else None) as span:
        yield span
        span.set_attribute(RUN_STATUS, str(run.status))
        if run.status == "failed":
            span.set_status(Status(StatusCode.ERROR, "the run failed"))


def step_spans(run: PipelineRun) -> Callable[[StepInfo], AbstractContextManager[Any]] | None:
    """The engine's ``around_step`` for ``run``: a ``stepkit.step`` span around each call of a step
    function; None when no span would be recorded (then the engine does nothing around steps)."""
    tracer = api.tracer()
    if tracer is None:
        return None
    run_id, name = str(run.pk), run.pipeline_name

    def around_step(info: StepInfo) -> AbstractContextManager[Any]:
        attributes: dict[str, Any] = {RUN_ID: run_id, PIPELINE: name, STEP: info.step, ATTEMPT: info.attempt}
        if info.item is not None:
            attributes[ITEM] = info.item
        return _span(tracer, "stepkit.step", attributes)

    return around_step


def decision(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a decision service (its first argument: the checkpoint, or its id) with a ``stepkit.decision``
    span, ``action`` its ``stepkit.decision.action``."""

    def decorate(service: Callable[P, R]) -> Callable[P, R]:
        @wraps(service)
        def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            if api.tracer() is None:
                return service(*args, **kwargs)
            checkpoint = args[0] if args else kwargs.get("checkpoint")
            with deciding(action, checkpoint) as span:
                result = service(*args, **kwargs)
                from ..models import Checkpoint

                if span is not None and isinstance(result, Checkpoint):  # "pending": short of the quorum
                    _describe(span, result)
                    span.set_attribute(OUTCOME, str(result.status))
                return result

        return traced

    return decorate


def deciding(action: str, checkpoint: Any) -> AbstractContextManager[Span | None]:
    """A ``stepkit.decision`` span (``action``, ``checkpoint``: a Checkpoint or its id) around a decision, for a
    service that opens it only once it knows there is something to decide (an expiry another sweeper has
    not applied yet); :func:`decided` completes it. A context manager that does nothing (``None``) when no
    span would be recorded."""
    tracer = api.tracer()
    if tracer is None:
        return _NOTHING
    return _decision_span(tracer, action, checkpoint)


@contextmanager
def _decision_span(tracer: Tracer, action: str, checkpoint: Any) -> Iterator[Span]:
    attributes = {ACTION: action, CHECKPOINT_ID: str(getattr(checkpoint, "pk", checkpoint))}
    with _span(tracer, "stepkit.decision", attributes) as span:
        token = _DECISION.set(span)
        try:
            yield span
        finally:
            _DECISION.reset(token)


def _describe(span: Span, checkpoint: Checkpoint) -> None:
    span.set_attributes({RUN_ID: str(checkpoint.run_id), PIPELINE: checkpoint.pipeline_name, STEP: checkpoint.step})


def decided(checkpoint: Checkpoint, decision: str) -> None:
    """``checkpoint_decided``: complete the attributes of the decision span this context is in, if any."""
    span = _DECISION.get()
    if span is not None and span.is_recording():
        _describe(span, checkpoint)
        span.set_attribute(OUTCOME, str(decision))


def in_current_context(enqueue: Callable[[], None]) -> Callable[[], None]:
    """``enqueue`` run later (after the commit) in the trace context current now: so that what it sends
    carries the span of the decision or the request, even if the commit comes after that span ended."""
    if api.tracer() is None:
        return enqueue
    from opentelemetry import context

    captured = context.get_current()

    def in_context() -> None:
        token = context.attach(captured)
        try:
            enqueue()
        finally:
            context.detach(token)

    return in_context


def carrier() -> dict[str, str]:
    """The current trace context as W3C Trace Context headers (``traceparent``, ``tracestate``), to send
    with a run's id; never the baggage. Empty when there is none or no span would be recorded (the message
    is then what it always was)."""
    if api.tracer() is None:
        return {}
    headers: dict[str, str] = {}
    _propagator().inject(headers)
    return headers


@cache
def _propagator() -> TextMapPropagator:
    """W3C Trace Context alone (``traceparent``, ``tracestate``), whatever the host's global propagator: the
    carrier is stored with the task (in the database, in the broker), and the global one usually includes W3C
    baggage, which may hold anything the host put there (a user's email)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()
