"""Blocking tool work off the event loop: one worker thread per device, and a clock that
tells compute time from waiting.

:func:`run_on_device` runs model (or heavy numpy) code on the device's thread
(:class:`cache.serial.SerialThread`: calls queue at the thread and run back to back, in the
order given). Inside :func:`compute_clock` (the invoker opens one around every tool run) it
also books the time the call spent queued for that thread, or waiting for the event loop to
resume it afterwards, as ``waited``: what the tool call cost minus that is its compute time,
the same for the same work whatever the concurrency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

from cache.lru import LRU
from cache.serial import SerialThread

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# One thread per torch device for the process (every event loop, every session): models are
# not re-entrant, and two big forwards on the same cores only slow each other down.
_device_threads: dict[str, SerialThread] = {}
_device_threads_lock = threading.Lock()


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


@contextmanager
def waiting() -> Iterator[None]:
    """Book the time spent in this block as waiting, not compute, on the running tool call's
    :func:`compute_clock` (no call running: nothing): for a call that waits for work another
    call is doing for it (a measurement shared by an image's expressions)."""
    clock = _CLOCK.get()
    start = time.perf_counter()
    try:
        yield
    finally:
        if clock is not None:
            clock.waited += time.perf_counter() - start


class SharedWork(Generic[K, V]):
    """Results by key, each computed once while the other calls that want it wait for it (their
    wait booked as waiting, see :func:`waiting`), the ``size`` most recent kept: work that does
    not depend on a call's arguments, such as an image's embedding or its candidates' features,
    which an image's expressions often ask for at the same moment.

    A computation that fails leaves nothing: the calls that waited for it look again, and one
    of them computes.

    Args:
        size: results kept (an :class:`cache.lru.LRU`).
    """

    def __init__(self, size: int):
        self._done: LRU[K, V] = LRU(size)
        self._running: dict[K, anyio.Event] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The result for ``key``: kept, or another call's once it is done, or ``compute()``'s."""
        while (found := self._done.get(key)) is None and (running := self._running.get(key)) is not None:
            with waiting():  # another call's work, not this call's compute
                await running.wait()
        if found is not None:
            return found
        done = self._running[key] = anyio.Event()
        try:
            result = await compute()
            self._done.put(key, result)
            return result
        finally:
            del self._running[key]
            done.set()


def device_thread(device: str) -> SerialThread:
    """The worker thread of ``device`` (``cpu``, ``cpu:0`` and ``cpu:1`` share one)."""
    key = device.split(":")[0] if device.startswith("cpu") else device
    with _device_threads_lock:
        if key not in _device_threads:
            _device_threads[key] = SerialThread(f"refseg-device-{key}")
        return _device_threads[key]


async def run_on_device(device: str, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking code on the device's thread, after the calls queued there before it.

    The time before the thread starts it (queued behind other work on the device) and after
    it returns until this task resumes is booked as waiting on the current
    :func:`compute_clock`, if any. Cancelled while queued, the call is dropped; while it
    runs, it is waited for (see :meth:`cache.serial.SerialThread.run`).
    """
    thread = device_thread(device)
    clock = _CLOCK.get()
    if clock is None:
        return await thread.run(fn, *args)
    called = time.perf_counter()
    span = [called, called]

    def timed() -> T:
        span[0] = time.perf_counter()
        try:
            return fn(*args)
        finally:
            span[1] = time.perf_counter()

    try:
        return await thread.run(timed)
    finally:
        clock.waited += (span[0] - called) + (time.perf_counter() - span[1])
