"""Blocking tool work off the event loop: one worker thread per device, and a clock that
tells compute time from waiting.

:func:`run_on_device` runs model (or heavy numpy) code in a worker thread under the device's
limiter. Inside :func:`compute_clock` (the invoker opens one around every tool run) it also
books the time the call spent queued for that thread, or waiting for the event loop to resume
it afterwards, as ``waited``: what the tool call cost minus that is its compute time, the same
for the same work whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

# Keyed weakly by the loop object (as agent.vlm keys its SDK clients): an id() can be
# reused by a later loop, and a bench suite runs loop after loop in one process.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)
_no_loop_limiters: dict[str, anyio.CapacityLimiter] = {}


@dataclass
class ComputeClock:
    """Seconds the running tool call spent waiting rather than computing: ``waited`` for its
    device thread or the event loop, ``booked_wait`` for what it books as wait (a VLM request
    held back by the endpoint's limits or pausing before a retry, see :func:`book_wait`)."""

    waited: float = 0.0
    booked_wait: float = 0.0


def book_wait(seconds: float) -> None:
    """Book ``seconds`` of the running tool call as wait, not compute (no call running: nothing)."""
    clock = _CLOCK.get()
    if clock is not None:
        clock.booked_wait += seconds


_CLOCK: ContextVar[ComputeClock | None] = ContextVar("refseg_compute_clock", default=None)


@contextmanager
def compute_clock() -> Iterator[ComputeClock]:
    """A clock for the tool call run inside this block (see the module docstring)."""
    clock = ComputeClock()
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


def device_limiter(device: str) -> anyio.CapacityLimiter:
    """One worker thread per torch device per event loop: models are not re-entrant and
    two big forwards on 2 CPU cores only slow each other down."""
    try:
        per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    except RuntimeError:
        per_loop = _no_loop_limiters
    key = device.split(":")[0] if device.startswith("cpu") else device
    if key not in per_loop:
        per_loop[key] = anyio.CapacityLimiter(1)
    return per_loop[key]


async def run_on_device(device: str, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking code in a worker thread under the device's limiter.

    The time before the thread starts it (queued behind other work on the device) and after
    it returns until this task resumes is booked as waiting on the current
    :func:`compute_clock`, if any.
    """
    limiter = device_limiter(device)
    clock = _CLOCK.get()
    if clock is None:
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
    called = time.perf_counter()
    span = [called, called]

    def timed() -> T:
        span[0] = time.perf_counter()
        try:
            return fn(*args)
        finally:
            span[1] = time.perf_counter()

    try:
        return await anyio.to_thread.run_sync(timed, limiter=limiter)
    finally:
        clock.waited += (span[0] - called) + (time.perf_counter() - span[1])
