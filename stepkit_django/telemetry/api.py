"""The OpenTelemetry API, if installed: which providers stepkit_django records with, and its attribute names.

``opentelemetry-api`` is optional (``pip install stepkit-django[otel]``). Without it,
or with ``STEPKIT["TELEMETRY"] = False``, or while no SDK provider is configured (the
API's own proxy and no-op providers), :func:`tracer` and :func:`meter_provider` answer
None and nothing is recorded: the callers then skip their work, so the runner's hot
path pays for one check per run advance, none per step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..conf import settings

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # the package works without it: nothing is recorded
    AVAILABLE = False
else:
    AVAILABLE = True

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = [
    "ACTION",
    "ATTEMPT",
    "AVAILABLE",
    "CHECKPOINT_ID",
    "ITEM",
    "NAME",
    "OUTCOME",
    "PIPELINE",
    "RUN_ID",
    "RUN_STATUS",
    "STEP",
    "choose",
    "configured_meter_provider",
    "is_global",
    "is_global_proxy",
    "meter_provider",
    "tracer",
]

#: The instrumentation scope's name (of the tracer and the meter).
NAME = "stepkit_django"

# The attributes of spans and metrics. Names and ids only: never a value of a run's context.
RUN_ID = "stepkit.run.id"
RUN_STATUS = "stepkit.run.status"
PIPELINE = "stepkit.pipeline"
STEP = "stepkit.step"
ATTEMPT = "stepkit.step.attempt"
ITEM = "stepkit.step.item"
CHECKPOINT_ID = "stepkit.checkpoint.id"
ACTION = "stepkit.decision.action"
OUTCOME = "stepkit.decision.outcome"

# Providers given to use() (through choose()) (None: OpenTelemetry's global ones), and what was made from them.
_chosen: dict[str, Any] = {"tracer_provider": None, "meter_provider": None}
_tracer: tuple[Any, Tracer] | None = None


def choose(*, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Choose the providers to record with (what :func:`stepkit_django.telemetry.use` does, but the gauges)."""
    global _tracer
    _chosen["tracer_provider"], _chosen["meter_provider"] = tracer_provider, meter_provider
    _tracer = None


def tracer() -> Tracer | None:
    """The tracer to record spans with; None when no span would be recorded (see the module)."""
    global _tracer
    if not AVAILABLE:
        return None
    provider = _chosen["tracer_provider"] or otel_trace.get_tracer_provider()
    # The provider first: with none set (the usual case without an SDK) the setting is not even read.
    if isinstance(provider, (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)) or not settings.TELEMETRY:
        return None
    made = _tracer
    if made is not None and made[0] is provider:
        return made[1]
    from .. import __version__

    made = (provider, provider.get_tracer(NAME, __version__))
    _tracer = made
    return made[1]


def _unset_meter_providers() -> tuple[type, ...]:
    """The API's own providers, which record nothing: its no-op one, and the proxy it answers before one is set."""
    internal = getattr(otel_metrics, "_internal", None)
    proxy = getattr(internal, "_ProxyMeterProvider", None)
    return (otel_metrics.NoOpMeterProvider, *((proxy,) if isinstance(proxy, type) else ()))


def configured_meter_provider() -> MeterProvider | None:
    """The meter provider chosen with ``use()``, else the global one, the API's proxy included (it hands
    what is made on it on to the provider set later); None without the API or with its no-op provider."""
    if not AVAILABLE:
        return None
    provider: MeterProvider = _chosen["meter_provider"] or otel_metrics.get_meter_provider()
    return None if isinstance(provider, otel_metrics.NoOpMeterProvider) else provider


def is_global_proxy(provider: object) -> bool:
    """Whether ``provider`` is the API's proxy, which stands for the global provider until one is set."""
    return (
        AVAILABLE
        and not isinstance(provider, otel_metrics.NoOpMeterProvider)
        and (isinstance(provider, _UNSET_METER_PROVIDERS))
    )


def is_global(provider: object) -> bool:
    """Whether ``provider`` is OpenTelemetry's global meter provider (set with ``set_meter_provider``)."""
    return AVAILABLE and provider is otel_metrics.get_meter_provider()


def meter_provider() -> MeterProvider | None:
    """The meter provider to record metrics with; None when nothing would be recorded (see the module)."""
    if not AVAILABLE:
        return None
    provider: MeterProvider = _chosen["meter_provider"] or otel_metrics.get_meter_provider()
    if isinstance(provider, _UNSET_METER_PROVIDERS) or not settings.TELEMETRY:
        return None
    return provider


_UNSET_METER_PROVIDERS: tuple[type, ...] = _unset_meter_providers() if AVAILABLE else ()
