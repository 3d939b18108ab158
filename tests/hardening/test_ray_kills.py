"""Item 11 on Ray: a killed worker's "(raylet) ..." message is not stdout's first line, and a
killed driver's own local cluster goes down with it (its agents stayed 30-120 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers_chaos import chaos_row

from bench.engines import ray_reaper


@pytest.mark.slow
def test_ray_driver_and_worker_kills_row_survives() -> None:
    row = chaos_row("Ray driver and worker kills")
    assert row.survived, row.problems
    assert row.injected == row.detected == 2
    assert row.details["cluster_gone_after_s"] < 15


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_the_watchdog_ends_its_targets_when_the_driver_goes_without_goodbye() -> None:
    target = _sleeper()
    started = ray_reaper.start_time(target.pid)
    assert started is not None
    watchdog = ray_reaper.start([(target.pid, started)])
    assert watchdog is not None
    assert watchdog.proc.stdin is not None
    watchdog.proc.stdin.close()  # what the kernel does when the driver dies
    assert target.wait(timeout=10) != 0 and watchdog.proc.wait(timeout=10) == 0


def test_a_goodbye_leaves_everything_alone_and_reused_ids_are_never_signalled() -> None:
    target = _sleeper()
    started = ray_reaper.start_time(target.pid) or 0
    watchdog = ray_reaper.start([(target.pid, started)])
    assert watchdog is not None
    watchdog.release()
    time.sleep(0.5)
    assert target.poll() is None
    ray_reaper.end([(target.pid, started + 1)])  # another process with this id: untouched
    assert target.poll() is None
    target.kill()
    target.wait()
    assert ray_reaper.start_time(os.getpid()) is not None
