"""Sync and async drivers for the engine core.

The core (``executor.py``) is written once, as generators that *yield*
operations: call a function, sleep, run sub-computations in parallel, run a
sub-computation under a timeout. A driver performs each operation and sends the
result back. ``run()`` uses the sync driver, so sync steps run in the caller's
thread (the Django ORM works in them as usual); ``arun()`` uses the async driver,
which runs sync callables through ``asgiref.sync.sync_to_async`` so the ORM is
safe there too.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async

from .current import CURRENT_STEP, StepInfo

__all__ = ["Attempt", "Call", "Parallel", "Sleep", "TimedOut", "drive_async", "drive_sync"]


@dataclass(slots=True)
class Call:
    """Call ``fn(*args)``; await the result if it is awaitable; bound it by ``timeout``."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float | None = None
    #: Set for step functions: exposed to them through ``current_step_info()``.
    info: StepInfo | None = None
    #: The run option ``around_step``: a context manager entered around the call (with ``info``), e.g. a span.
    around: Callable[[StepInfo], AbstractContextManager[Any]] | None = None


@dataclass(slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class Parallel:
    """Drive ``subs`` concurrently; return ``[(ok, value_or_exception), ...]`` in order.

    With ``fail_fast`` the first failure is raised at once instead.
    """

    subs: list[Generator[Any, Any, Any]]
    fail_fast: bool


@dataclass(slots=True)
class Attempt:
    """Drive ``gen`` to completion within ``timeout`` seconds."""

    gen: Generator[Any, Any, Any]
    timeout: float


Op = Call | Sleep | Parallel | Attempt


class TimedOut(Exception):
    """Raised into the core when an operation's timeout expired (converted to StepTimeout)."""


class _Cancelled(Exception):
    """Stops a sub-computation whose result is no longer wanted (timed out, or a sibling failed)."""


def _close_thread_connections() -> None:
    # Worker threads open their own database connections; close them when the thread ends.
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()


# -- sync ------------------------------------------------------------------------


def drive_sync(gen: Generator[Any, Any, Any], cancel: threading.Event | None = None) -> Any:
    """Run ``gen`` to completion in this thread and return its value."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        if cancel is not None and cancel.is_set():
            gen.close()
            raise _Cancelled
        try:
            value = _perform_sync(op)
        except Exception as exc:
            error = exc


def _run_coroutine(awaitable: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    # An event loop already runs in this thread: run the coroutine in a helper thread.
    return _in_thread(lambda: asyncio.run(_await(awaitable)), None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _in_thread(target: Callable[[], Any], timeout: float | None, cancel: threading.Event | None = None) -> Any:
    """Run ``target`` in a daemon thread; raise TimedOut if it takes longer than ``timeout``."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()
            _close_thread_connections()

    context = contextvars.copy_context()  # the step info and the caller's context variables
    threading.Thread(target=context.run, args=(run,), daemon=True, name="stepkit-step").start()
    if not done.wait(timeout):
        if cancel is not None:
            cancel.set()
        raise TimedOut
    if "error" in box:
        raise box["error"]
    return box["value"]


def _perform_sync(op: Op) -> Any:
    if type(op) is Call and op.info is not None:
        token = CURRENT_STEP.set(op.info)
        try:
            if op.around is None:
                return _perform_sync_call(op)
            with op.around(op.info):
                return _perform_sync_call(op)
        finally:
            CURRENT_STEP.reset(token)
    if type(op) is Call:
        return _perform_sync_call(op)
    return _perform_sync_other(op)


def _perform_sync_call(op: Call) -> Any:
    if op.timeout is None:
        result = op.fn(*op.args)
        return _run_coroutine(result) if inspect.isawaitable(result) else result
    if iscoroutinefunction(op.fn):
        return _run_coroutine(_bounded(op.fn(*op.args), op.timeout))
    fn, args = op.fn, op.args

    def call() -> Any:
        result = fn(*args)
        return _run_coroutine(result) if inspect.isawaitable(result) else result

    return _in_thread(call, op.timeout)


def _perform_sync_other(op: Op) -> Any:
    if type(op) is Sleep:
        threading.Event().wait(op.seconds)
        return None
    if type(op) is Attempt:
        cancel = threading.Event()
        gen = op.gen
        return _in_thread(lambda: drive_sync(gen, cancel), op.timeout, cancel)
    if type(op) is Parallel:
        return _parallel_sync(op)
    raise TypeError(f"Unknown engine operation {op!r}")


def _parallel_sync(op: Parallel) -> list[tuple[bool, Any]]:
    cancel = threading.Event()
    finished: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()

    def run(index: int, sub: Generator[Any, Any, Any]) -> None:
        try:
            finished.put((index, True, drive_sync(sub, cancel)))
        except BaseException as exc:
            finished.put((index, False, exc))
        finally:
            _close_thread_connections()

    for index, sub in enumerate(op.subs):
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(run, index, sub), daemon=True, name="stepkit-parallel").start()
    results: list[tuple[bool, Any]] = [(False, None)] * len(op.subs)
    for _ in op.subs:
        index, ok, value = finished.get()
        if not ok and op.fail_fast:
            cancel.set()
            raise value
        results[index] = (ok, value)
    return results


# -- async -----------------------------------------------------------------------


async def _bounded(awaitable: Any, timeout: float) -> Any:
    """Await with a deadline; cancel and raise TimedOut when it passes.

    Unlike ``asyncio.wait_for`` this tells a deadline apart from a TimeoutError
    raised by the step itself.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task})
        raise TimedOut
    return task.result()


async def drive_async(gen: Generator[Any, Any, Any], thread_sensitive: bool = True) -> Any:
    """Run ``gen`` to completion on the running event loop and return its value."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = await _perform_async(op, thread_sensitive)
        except Exception as exc:
            error = exc


async def _perform_async(op: Op, thread_sensitive: bool) -> Any:
    if type(op) is Call and op.info is not None:
        token = CURRENT_STEP.set(op.info)
        try:
            if op.around is None:
                return await _perform_async_call(op, thread_sensitive)
            with op.around(op.info):
                return await _perform_async_call(op, thread_sensitive)
        finally:
            CURRENT_STEP.reset(token)
    if type(op) is Call:
        return await _perform_async_call(op, thread_sensitive)
    return await _perform_async_other(op, thread_sensitive)


async def _perform_async_call(op: Call, thread_sensitive: bool) -> Any:
    if iscoroutinefunction(op.fn):
        awaitable = op.fn(*op.args)
    else:
        awaitable = sync_to_async(op.fn, thread_sensitive=thread_sensitive)(*op.args)
    result = await (awaitable if op.timeout is None else _bounded(awaitable, op.timeout))
    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
        result = await result
    return result


async def _perform_async_other(op: Op, thread_sensitive: bool) -> Any:
    if type(op) is Sleep:
        await asyncio.sleep(op.seconds)
        return None
    if type(op) is Attempt:
        return await _bounded(drive_async(op.gen, thread_sensitive), op.timeout)
    if type(op) is Parallel:
        # Sync items must not share one thread, or they would not overlap.
        tasks = [asyncio.ensure_future(drive_async(sub, False)) for sub in op.subs]
        if op.fail_fast:
            try:
                values = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            return [(True, v) for v in values]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        return [(not isinstance(v, BaseException), v) for v in outcomes]
    raise TypeError(f"Unknown engine operation {op!r}")
