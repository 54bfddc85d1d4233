"""Run configuration of the engine: the options a pipeline or one run takes, checked in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CONFIG_KEYS", "check_config"]

CONFIG_KEYS = ("log", "on_step_complete", "on_error", "signal")


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise TypeError(
            f"Unknown pipeline option(s): {', '.join(sorted(unknown))}. Valid options: {', '.join(CONFIG_KEYS)}"
        )
    for key in ("on_step_complete", "on_error"):
        if config.get(key) is not None and not callable(config[key]):
            raise TypeError(f"{key} must be callable, got {config[key]!r}")
    signal = config.get("signal")
    if signal is not None and not callable(getattr(signal, "is_set", None)):
        raise TypeError("signal must have an is_set() method, e.g. threading.Event")
    log = config.get("log", False)
    if not isinstance(log, (bool, dict)):
        raise TypeError(f"log must be a bool or a dict, got {log!r}")
    return dict(config)
