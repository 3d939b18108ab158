"""Event-loop lag: how late a task that asked to sleep ``interval`` was woken up.

Episodes share one event loop per process; anything that holds it (an import, a big JSON
parse, a synchronous disk write) delays every other episode's VLM replies and tool results.
:class:`LagMonitor` is a task that sleeps :data:`INTERVAL_S` over and over and records how much
later than asked it woke each time. Lags are kept as a histogram of whole milliseconds (bounded
memory for runs of any length, and histograms of several processes merge), with the exact
maximum; ``bench run`` reports the p99 and the maximum in ``summary.json`` and on the console.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

INTERVAL_S = 0.02
STALL_MS = 250.0  # a lag this long is a stall: other episodes' replies waited that long


@dataclass
class LoopLag:
    """Lags of one or several event loops (merge them with :meth:`merge`).

    Attributes:
        counts: how many wake-ups were late by each whole number of milliseconds.
        max_ms: the largest lag seen, exactly.
        stalls: wake-ups later than :data:`STALL_MS`.
    """

    counts: Counter[int] = field(default_factory=Counter)
    max_ms: float = 0.0
    stalls: int = 0

    def add(self, lag_ms: float) -> None:
        lag_ms = max(0.0, lag_ms)
        self.counts[int(lag_ms)] += 1
        self.max_ms = max(self.max_ms, lag_ms)
        self.stalls += int(lag_ms > STALL_MS)

    def merge(self, other: LoopLag) -> None:
        self.counts.update(other.counts)
        self.max_ms = max(self.max_ms, other.max_ms)
        self.stalls += other.stalls

    @property
    def samples(self) -> int:
        return sum(self.counts.values())

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) in milliseconds, to the millisecond (``None``: no samples)."""
        total = self.samples
        if not total:
            return None
        rank, seen = q * total, 0
        for ms in sorted(self.counts):
            seen += self.counts[ms]
            if seen >= rank:
                return min(float(ms + 1), round(self.max_ms, 1))
        return self.max_ms

    def as_record(self) -> dict[str, Any]:
        """What ``invocations.jsonl`` and ``summary.json`` hold (see :class:`bench.records.EventLoopLag`)."""
        p99 = self.quantile_ms(0.99)
        return {
            "interval_ms": INTERVAL_S * 1000,
            "samples": self.samples,
            "p50_ms": self.quantile_ms(0.5),
            "p99_ms": p99,
            "max_ms": round(self.max_ms, 1),
            "stalls_over_250ms": self.stalls,
            "histogram_ms": {str(k): v for k, v in sorted(self.counts.items())},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> LoopLag:
        """The lags an :meth:`as_record` dict holds (empty for ``None`` or an older record)."""
        lag = cls()
        if not record:
            return lag
        lag.counts.update({int(k): int(v) for k, v in (record.get("histogram_ms") or {}).items()})
        lag.max_ms = float(record.get("max_ms") or 0.0)
        lag.stalls = int(record.get("stalls_over_250ms") or 0)
        return lag


class LagMonitor:
    """Measures the running event loop's lag: ``await monitor.run()`` in a task of that loop
    until :meth:`stop`; :attr:`lag` holds what it measured (:meth:`take` hands it over).

    Args:
        interval_s: how long each probe sleeps.
    """

    def __init__(self, interval_s: float = INTERVAL_S):
        self.interval_s = interval_s
        self.lag = LoopLag()
        self._scope: anyio.CancelScope | None = None
        self._stopped = False

    def take(self) -> LoopLag:
        """The lags measured since the last take (then forgotten here)."""
        taken, self.lag = self.lag, LoopLag()
        return taken

    def stop(self) -> None:
        """End :meth:`run` (at once, or as soon as it starts)."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        """Probe until :meth:`stop`."""
        with anyio.CancelScope() as self._scope:
            while not self._stopped:
                asked = time.perf_counter()
                await anyio.sleep(self.interval_s)
                self.lag.add((time.perf_counter() - asked - self.interval_s) * 1000)
