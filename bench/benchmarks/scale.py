"""How a VLM-bound run scales with ``--concurrency`` and workers: ``refseg bench scale``.

    refseg bench scale [--latency 1.0] [--controllers agent,ground,loop] [--concurrency 1,4,16,64]
                       [--engine local|ray] [--workers N|auto] [--json PATH]

Each cell is one real ``refseg bench run`` (a child process: its own peak RSS and CPU time)
on generated scenes with the offline toolset and the guard off (``--tau-conf 1 --tau-gap 1``:
every example asks the VLM), against a built-in endpoint that answers every request after the
same ``--latency`` (:mod:`bench.doubles.fixed_latency`, in a process of its own, so it never
competes for the measured interpreter). A cell runs ``waves x c`` examples (at least
``min_examples``), from a cold cache of its own. Examples per second are over the run's own
wall time (``invocations.jsonl``: set-up and a Ray cluster's start left out); the speed-up is
a cell's rate over the same controller's rate at the smallest concurrency, and efficiency is
speed-up / (c / smallest c): 1.0 is ideal. Beside them: the run's event-loop lag (p99, max,
stalls over 250 ms), the peak RSS of the run's processes (the driver; with Ray also the largest
worker), CPU ms per example, the most VLM requests the endpoint saw in flight, and the load
average before the cell (this machine may be shared: read each figure with its load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.benchmarks.scale_options import CONTROLLERS, ScaleOptions
from bench.doubles.fixed_latency import LatencyEndpoint
from bench.engines.ray_cluster import machine_cores
from bench.run_folder import read_invocations
from tools.errors import RefsegError

SCENE_EXAMPLES = 16  # generated scenes hold about 18 examples; ask for enough scenes


@dataclass
class Cell:
    """One cell's figures (see the module docstring)."""

    controller: str
    engine: str
    concurrency: int
    workers: int
    examples: int
    failed: int
    wall_s: float
    examples_per_s: float
    vlm_requests_per_example: float
    endpoint_max_in_flight: int
    lag_p99_ms: float | None
    lag_max_ms: float | None
    stalls_over_250ms: int
    cpu_ms_per_example: float | None
    driver_peak_rss_mb: float
    worker_peak_rss_mb: float | None
    load_before: float
    speedup: float | None = None
    efficiency: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def cell_command(options: ScaleOptions, controller: str, c: int, url: str, run_dir: Path) -> list[str]:
    """The ``refseg bench run`` of one cell."""
    n = options.examples(c)
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "bench",
        "run",
        "--dataset",
        "synthetic",
        "--toolset",
        "offline",
    ]
    cmd += ["--controller", controller, *CONTROLLERS[controller], "--vlm-base-url", url]
    cmd += ["--tau-conf", "1", "--tau-gap", "1", "--concurrency", str(c)]
    cmd += ["--n", str(-(-n // SCENE_EXAMPLES)), "--limit", str(n), "--out", str(run_dir)]
    cmd += ["--cache-dir", str(run_dir / "cache"), "--quiet", "--bootstrap", "0", "--max-fallback-rate", "1"]
    if options.engine == "ray":
        workers = min(options.workers, c) if isinstance(options.workers, int) else options.workers
        cmd += ["--engine", "ray", *(["--workers", str(workers)] if workers else [])]
    if options.vlm_max_concurrency:
        cmd += ["--vlm-max-concurrency", str(options.vlm_max_concurrency)]
    return cmd


def _spawn(cmd: list[str], log: Path) -> tuple[int, float]:
    """Run ``cmd`` to its end; its exit status and peak RSS in MB (its own, from ``wait4``)."""
    with log.open("w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024  # Linux: KiB


def run_cell(options: ScaleOptions, controller: str, c: int, endpoint: LatencyEndpoint, root: Path) -> Cell:
    """One cell: the run, then its figures from its own files, the endpoint and ``wait4``.

    Raises:
        RefsegError: the run failed (the last line it printed says why).
    """
    run_dir = root / f"{controller}-{options.engine}-c{c}"
    load = os.getloadavg()[0]
    endpoint.stats(reset=True)
    status, rss_mb = _spawn(
        cell_command(options, controller, c, endpoint.base_url, run_dir), run_dir.with_suffix(".log")
    )
    seen = endpoint.stats()
    ended = [i for i in read_invocations(run_dir) if i.get("ended", True) and "wall_s" in i]
    summary_path = run_dir / "summary.json"
    if status not in (0, 1) or not ended or not summary_path.exists():  # 1: examples left by --limit
        said = [line for line in run_dir.with_suffix(".log").read_text(errors="replace").splitlines() if line]
        raise RefsegError(
            f"the {controller} run at c={c} failed (exit {status}): {said[-1] if said else 'no output'}"
        )
    inv, summary = ended[-1], json.loads(summary_path.read_text())
    timing, lag = summary.get("timing", {}), summary.get("timing", {}).get("event_loop", {})
    wall = work_seconds(inv)
    done = int(inv["examples_run"])
    worker_rss = inv.get("worker_peak_rss_bytes")
    return Cell(
        controller=controller,
        engine=options.engine,
        concurrency=c,
        workers=int(inv.get("workers", 1)),
        examples=done,
        failed=int(summary.get("counts", {}).get("failed", 0)),
        wall_s=round(wall, 3),
        examples_per_s=round(done / wall, 4) if wall > 0 else 0.0,
        vlm_requests_per_example=round(seen["requests"] / done, 2) if done else 0.0,
        endpoint_max_in_flight=int(seen["max_in_flight"]),
        lag_p99_ms=lag.get("p99_ms"),
        lag_max_ms=lag.get("max_ms"),
        stalls_over_250ms=int(lag.get("stalls_over_250ms") or 0),
        cpu_ms_per_example=timing.get("cpu_ms_per_example"),
        driver_peak_rss_mb=round(rss_mb, 1),
        worker_peak_rss_mb=round(worker_rss / 2**20, 1) if worker_rss else None,
        load_before=round(load, 2),
    )


def work_seconds(invocation: dict[str, Any]) -> float:
    """The seconds a run spent on its examples: ``wall_s`` as ``invocations.jsonl`` books it,
    which already leaves out set-up and an engine's start (``setup_s``, ``engine_start_s``)."""
    return float(invocation["wall_s"])


def with_speedups(cells: list[Cell]) -> list[Cell]:
    """Each cell's speed-up over its controller's cell at the smallest concurrency, and its
    efficiency: speed-up / (c / the smallest c), 1.0 when examples/s grow as fast as c."""
    for cell in cells:
        same = [x for x in cells if x.controller == cell.controller and x.engine == cell.engine]
        base = min(same, key=lambda x: x.concurrency)
        if base.examples_per_s > 0:
            cell.speedup = round(cell.examples_per_s / base.examples_per_s, 2)
            cell.efficiency = round(cell.speedup / (cell.concurrency / base.concurrency), 3)
    return cells


def run_scale(options: ScaleOptions, on_cell: Any = None) -> list[Cell]:
    """Every cell of ``options``, one after the other, against one fixed-latency endpoint."""
    cells: list[Cell] = []
    with (
        tempfile.TemporaryDirectory(prefix="refseg-scale-") as tmp,
        LatencyEndpoint(options.latency_s) as endpoint,
    ):
        root = options.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for controller in options.controllers:
            for c in sorted(options.concurrency):
                cell = run_cell(options, controller, c, endpoint, root)
                cells.append(cell)
                with_speedups(cells)
                if on_cell is not None:
                    on_cell(cell)
    return cells


def report(options: ScaleOptions, cells: list[Cell]) -> dict[str, Any]:
    """The JSON of a run: the options, the machine and every cell."""
    return {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "machine": {"cores": machine_cores(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cells": [asdict(cell) for cell in cells],
    }


HEADER = (
    f"{'controller':10} {'engine':6} {'c':>3} {'wk':>2} {'ex':>4} {'ex/s':>7} {'speed-up':>8} {'eff.':>5} "
    f"{'lag p99/max ms':>15} {'stalls':>6} {'CPU ms/ex':>9} {'RSS MB':>13} {'VLM/ex':>6} "
    f"{'in flight':>9} {'load':>5}"
)


def row(cell: Cell) -> str:
    """One cell as a table line (see :data:`HEADER`)."""

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lag = f"{num(cell.lag_p99_ms, 0)}/{num(cell.lag_max_ms, 0)}"
    rss = num(cell.driver_peak_rss_mb, 0) + (
        f"+{num(cell.worker_peak_rss_mb, 0)}w" if cell.worker_peak_rss_mb else ""
    )
    speedup = "-" if cell.speedup is None else f"{cell.speedup:.1f}x"
    return (
        f"{cell.controller:10} {cell.engine:6} {cell.concurrency:>3} {cell.workers:>2} {cell.examples:>4} "
        f"{cell.examples_per_s:>7.2f} {speedup:>8} {num(cell.efficiency, 2):>5} {lag:>15} "
        f"{cell.stalls_over_250ms:>6} {num(cell.cpu_ms_per_example):>9} {rss:>13} "
        f"{cell.vlm_requests_per_example:>6.1f} {cell.endpoint_max_in_flight:>9} {cell.load_before:>5.2f}"
    )


def run_scale_table(options: ScaleOptions) -> int:
    """``refseg bench scale``: print the table (a line as each cell ends), write the JSON.

    Returns 1 when an example failed in any cell, else 0.
    """
    print(
        f"fixed-latency endpoint: {options.latency_s:g} s per request; offline toolset, guard off; "
        f"{machine_cores()} cores; examples per cell: {options.waves} x c (at least {options.min_examples})"
    )
    print(HEADER, flush=True)
    cells = run_scale(options, on_cell=lambda cell: print(row(cell), flush=True))
    print(
        "speed-up: examples/s over the same controller's at the smallest c; eff.: speed-up / "
        "(c / smallest c); RSS: the driver's peak (+ the largest Ray worker's); in flight: the most "
        "VLM requests the endpoint saw at once; load: the 1-minute load average before the cell"
    )
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(report(options, cells), indent=2))
        print(f"json: {options.json_path}")
    return 1 if any(cell.failed for cell in cells) else 0
