"""One worker thread that runs blocking calls in the order they were given, awaitable from
the event loop: the device threads (:func:`tools.device.run_on_device`) and the tool
cache's database thread (:class:`cache.store.ToolCache`).

Why not ``anyio.to_thread.run_sync`` under a capacity limiter of one: that limiter is taken
and given back on the event loop, so under load every call holds it for two trips round a
busy loop (the hand-over and the release) besides its own run, and the thread idles while
the next caller waits for the loop. Here calls queue at the thread, which runs them back to
back; only the caller's resumption waits for the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class SerialThread:
    """A thread, started on first use, that runs submitted calls one at a time, first in
    first out.

    Calls queued when the interpreter exits still run (a :class:`ThreadPoolExecutor` is
    drained at exit); an idle thread does not hold the exit up. A forked child starts its own
    thread on first use.

    Args:
        name: the thread's name (``refseg-device-cpu``, ``refseg-cache``), for debuggers.
    """

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._ident: int | None = None

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name, initializer=self._started)
                self._pid = os.getpid()
            return self._pool

    def _started(self) -> None:
        self._ident = threading.get_ident()

    @property
    def started(self) -> bool:
        """A thread was started in this process (and not shut down since)."""
        return self._pool is not None and self._pid == os.getpid()

    def on_thread(self) -> bool:
        """The caller is this worker thread (it must not wait for its own queue)."""
        return self._ident == threading.get_ident()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` after what is queued already; does not wait."""
        return self._executor().submit(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the thread after what is queued before it; returns its result
        or raises what it raised.

        Cancelled while still queued, the call is dropped. Cancelled while it runs, this
        waits for it to end (code on a device is never left running for a caller that has
        gone) and then passes the cancellation on.
        """
        future = self.submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # it started (or just ended): let it finish
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await asyncio.wrap_future(future)
            raise

    def wait_idle(self) -> None:
        """Block until every call queued so far has run (a no-op on the thread itself)."""
        if not self.on_thread():
            self.submit(_nothing).result()

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread (a later call starts a new one)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=not self.on_thread())
            self._ident = None  # a later thread may get its id


def _nothing() -> None:
    return None
