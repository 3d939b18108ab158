"""An engine's start (a Ray cluster, its workers and their models) is booked as set-up: the
run's wall time and examples per second are the work alone, and the summary's ``setup_s``
holds the start (the Ray engine reports its start the same way: ``EngineStats.start_s``)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from helpers_runner import offline_runtime, synthetic

from bench.engines.base import EngineJob, EngineStats, RecordStream
from bench.engines.local import LocalEngine
from bench.options import DataSpec, RunOptions
from bench.report.markdown import print_summary
from bench.run_folder import read_invocations
from bench.runner import run_examples

START_S = 0.4  # what this engine spends starting, before any example


class SlowStartEngine:
    """The local engine behind a start that takes :data:`START_S` seconds, reported as a Ray
    engine reports its cluster's and workers' start."""

    name = "local"

    def __init__(self) -> None:
        self.inner = LocalEngine()

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        started = time.perf_counter()
        await anyio.sleep(START_S)  # the cluster starting
        start_s = time.perf_counter() - started
        stats = await self.inner.run(job, send)
        stats.start_s = start_s
        return stats


def test_the_engine_start_is_booked_as_set_up_not_as_run_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = offline_runtime(None)
    out = tmp_path / "run"
    began = time.perf_counter()
    try:
        result = anyio.run(
            lambda: run_examples(
                rt, synthetic(1), out, DataSpec("synthetic", n=1), RunOptions(quiet=True, bootstrap=0),
                engine=SlowStartEngine(),
            )
        )  # fmt: skip
    finally:
        rt.close()
    elapsed = time.perf_counter() - began
    inv = read_invocations(out)[-1]
    assert inv["engine_start_s"] >= START_S
    assert inv["wall_s"] + inv["engine_start_s"] + inv["setup_s"] <= elapsed  # the start is not in wall_s
    timing = result.summary.timing
    assert timing.setup_s == round(inv["setup_s"] + inv["engine_start_s"], 3) >= START_S
    assert timing.examples_per_s == pytest.approx(inv["examples_run"] / inv["wall_s"], rel=1e-3)
    print_summary("run", result.summary)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if " set-up " in ln)
    assert f"after {timing.setup_s:.2f} s set-up" in line
