"""Scenarios 3 and 4: the queue at 100,000 checkpoints, and decisions under load."""

from __future__ import annotations

from typing import Any


def scenario_queue(quick: bool = False) -> list[str]:
    return []


def scenario_decisions(quick: bool = False) -> list[str]:
    return []


def _unused(*_: Any) -> None:
    return None
