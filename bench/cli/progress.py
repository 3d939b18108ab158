"""A live progress line on a terminal (``refseg segment``): what runs now and for how long.

On a terminal, the stage (``loading models (sam_propose, clip_rank)``, ``dog.jpg [loop]``)
is shown on one stderr line with its seconds so far, redrawn every second, so a run that
takes minutes on a CPU is never silent. When stderr is not a terminal (piped, redirected,
a test) nothing is written: logs and pipes get only the result lines.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import IO

CLEAR = "\r\x1b[K"  # back to the start of the line, erase it


class Progress:
    """One live line on ``stream`` while a stage runs (a context manager: the ticker stops on exit).

    Args:
        stream: where the line goes (default: stderr); nothing is written unless it is a tty.
        interval: seconds between redraws.
    """

    def __init__(self, stream: IO[str] | None = None, interval: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stage: str | None = None
        self._keep = False
        self._started = 0.0

    def stage(self, text: str, *, keep: bool = False) -> None:
        """Show ``text`` with its seconds from now on; ``keep``: when it ends, leave a line
        saying how long it took (else it is erased, for the result line to take its place)."""
        if not self.live:
            return
        with self._lock:
            self._end()
            self._stage, self._keep, self._started = text, keep, time.perf_counter()
            self._draw()
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="refseg-progress", daemon=True)
            self._thread.start()

    def stage_hook(self, text: str, keep: bool) -> None:
        """:meth:`stage` as a ``(text, keep)`` callback (``bench.segment``'s ``on_stage``)."""
        self.stage(text, keep=keep)

    def done(self) -> None:
        """End the current stage (before a result line is printed)."""
        if self.live:
            with self._lock:
                self._end()

    def _end(self) -> None:
        if self._stage is None:
            return
        elapsed = time.perf_counter() - self._started
        self.stream.write(CLEAR + (f"{self._stage}: {elapsed:.1f} s\n" if self._keep else ""))
        self.stream.flush()
        self._stage = None

    def _draw(self) -> None:
        if self._stage is not None:
            self.stream.write(f"{CLEAR}{self._stage} ... {time.perf_counter() - self._started:.0f} s")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.done()
