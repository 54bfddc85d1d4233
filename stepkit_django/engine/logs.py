"""Stepkit-style log lines and the stopwatch summary.

Lines name steps and the *keys* a step produced, never context values: contexts
may hold personal data and must not reach log files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .options import current as options

__all__ = ["RunLog"]

LogFn = Callable[[str], Any]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms"


class RunLog:
    """Writes one run's log lines. Disabled (the default) costs one attribute check per step."""

    __slots__ = ("enabled", "error_fn", "info_fn", "show_step_duration", "show_summary", "show_total", "timings")

    def __init__(self, option: bool | dict[str, Any]) -> None:
        self.enabled = bool(option)
        self.info_fn: LogFn | None = None
        self.error_fn: LogFn | None = None
        self.show_step_duration = True
        self.show_summary = False
        self.show_total = False
        # (display path, seconds, succeeded)
        self.timings: list[tuple[str, float, bool]] = []
        if isinstance(option, dict):
            unknown = set(option) - {"log_fn", "error_log_fn", "stopwatch"}
            if unknown:
                raise TypeError(f"Unknown log option(s): {', '.join(sorted(unknown))}")
            self.info_fn = option.get("log_fn")
            self.error_fn = option.get("error_log_fn")
            self._stopwatch(option.get("stopwatch", False))

    def _stopwatch(self, value: bool | dict[str, bool]) -> None:
        if isinstance(value, bool):
            self.show_summary = self.show_total = value
            return
        if not isinstance(value, dict):
            raise TypeError(f"stopwatch must be a bool or a dict, got {value!r}")
        unknown = set(value) - {"show_step_duration", "show_summary", "show_total"}
        if unknown:
            raise TypeError(f"Unknown stopwatch option(s): {', '.join(sorted(unknown))}")
        self.show_step_duration = value.get("show_step_duration", True)
        self.show_summary = value.get("show_summary", True)
        self.show_total = value.get("show_total", True)

    # -- sinks -------------------------------------------------------------------

    def _info(self, line: str) -> None:
        (self.info_fn or logging.getLogger(options().logger_name).info)(line)

    def _error(self, line: str) -> None:
        (self.error_fn or logging.getLogger(options().logger_name).error)(line)

    def _on(self, step_log: bool | None) -> bool:
        return self.enabled if step_log is None else step_log

    # -- events ------------------------------------------------------------------

    def start(self, name: str | None, input_keys: Iterable[str], resumed_at: str | None) -> None:
        if not self.enabled:
            return
        label = f" '{name}'" if name else ""
        if resumed_at:
            self._info(f"🚀 Resuming pipeline{label} after '{resumed_at}'")
        else:
            keys = ", ".join(input_keys) or "(none)"
            self._info(f"🚀 Starting pipeline{label} with input keys: {keys}")

    def step_start(self, path: str, kind: str, step_log: bool | None) -> None:
        if self._on(step_log):
            icon, word = {"branch": ("🔀", "Branch"), "transform": ("🔄", "Transform")}.get(kind, ("📍", "Step"))
            self._info(f"{icon} {word}: {path}")

    def branch_case(self, path: str, case: str | None, step_log: bool | None) -> None:
        if self._on(step_log):
            self._info(f"   ↳ Executing: {case}" if case else f"   ↳ No case matched in {path}")

    def step_done(self, path: str, duration: float, output_keys: Iterable[str], step_log: bool | None) -> None:
        if not self._on(step_log):
            return
        self.timings.append((path, duration, True))
        suffix = f" in {_ms(duration)}" if self.show_step_duration else ""
        keys = ", ".join(output_keys)
        self._info(f"✅ {path} completed{suffix}" + (f"\n   Output: {keys}" if keys else ""))

    def skipped(self, path: str, step_log: bool | None) -> None:
        if self._on(step_log):
            self._info(f"⏭️  {path} skipped (condition not met)")

    def resume_skipped(self, path: str) -> None:
        if self.enabled:
            self._info(f"⏩ {path} skipped (completed before the checkpoint)")

    def retrying(self, path: str, attempt: int, exc: BaseException, delay: float) -> None:
        if self.enabled:
            self._error(f"🔁 {path} attempt {attempt} failed ({type(exc).__name__}: {exc}); retrying in {delay:g}s")

    def failed(self, path: str, duration: float, exc: BaseException, mode: str, step_log: bool | None) -> None:
        if not self._on(step_log):
            return
        self.timings.append((path, duration, False))
        self._error(f"❌ {path} failed after {_ms(duration)} (on_error={mode})\n   Error: {type(exc).__name__}: {exc}")

    def item_failed(self, path: str, index: int, exc: BaseException) -> None:
        if self.enabled:
            self._error(f"❌ {path} item {index + 1} failed and was left out: {type(exc).__name__}: {exc}")

    def collision(self, message: str) -> None:
        if self.enabled:
            self._error(f"⚠️  {message}")
        else:
            logging.getLogger(options().logger_name).warning(message)

    def stopped(self, path: str) -> None:
        if self.enabled:
            self._info(f"🛑 Pipeline stopped early after '{path}'")

    def finish(self, total: float, stopped: bool) -> None:
        if not self.enabled:
            return
        if self.show_summary and self.timings:
            self._info(self.summary())
        if self.show_total:
            self._info(f"⏰ Total Pipeline Time: {_ms(total)}")
        self._info("⏸️  Pipeline stopped before its last step" if stopped else "✨ Pipeline completed successfully")

    def summary(self) -> str:
        """The performance table, then average, slowest and fastest step."""
        rows = [(("✅ " if ok else "❌ ") + path, _ms(d)) for path, d, ok in self.timings]
        width = max(len(label) + len(value) for label, value in rows) + 4
        lines = ["⏱️  Performance Summary:", "┌" + "─" * (width + 2) + "┐"]
        for label, value in rows:
            lines.append(f"│ {label}{' ' * (width - len(label) - len(value))}{value} │")
        lines.append("└" + "─" * (width + 2) + "┘")
        durations = [d for _, d, _ in self.timings]
        slowest = max(self.timings, key=lambda t: t[1])
        fastest = min(self.timings, key=lambda t: t[1])
        lines += [
            "📊 Statistics:",
            f"   Average: {_ms(sum(durations) / len(durations))}",
            f"   Slowest: {slowest[0]} ({_ms(slowest[1])})",
            f"   Fastest: {fastest[0]} ({_ms(fastest[1])})",
        ]
        return "\n".join(lines)
