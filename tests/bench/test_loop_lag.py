"""Event-loop lag: the probe, its histogram, and what a run reports."""

from __future__ import annotations

import time

import anyio
import pytest

from bench.loop_lag import LagMonitor, LoopLag


def test_a_held_loop_is_a_stall_and_the_histogram_merges() -> None:
    monitor = LagMonitor(interval_s=0.01)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(monitor.run)
            await anyio.sleep(0.1)
            time.sleep(0.3)  # something holds the loop
            await anyio.sleep(0.05)
            monitor.stop()

    anyio.run(main)
    lag = monitor.take()
    assert lag.stalls == 1 and 250 < lag.max_ms < 2000
    assert lag.samples >= 5 and lag.quantile_ms(0.5) is not None and lag.quantile_ms(0.5) < 50
    record = lag.as_record()
    again = LoopLag.from_record(record)
    again.merge(lag)
    assert (
        again.samples == 2 * lag.samples
        and again.stalls == 2
        and again.max_ms == pytest.approx(lag.max_ms, abs=0.1)
    )
    assert monitor.take().samples == 0  # taken: the next figures start afresh


def test_quantiles_are_read_from_whole_milliseconds() -> None:
    lag = LoopLag()
    for ms in [1.2] * 98 + [40.5, 300.0]:
        lag.add(ms)
    assert lag.quantile_ms(0.5) == 2.0 and lag.quantile_ms(0.99) == 41.0
    assert lag.quantile_ms(1.0) == 300.0 and lag.stalls == 1
    assert LoopLag().quantile_ms(0.99) is None
