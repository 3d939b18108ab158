"""Throughput of the engines on the offline toolset, their same-answers check, a killed worker.

    refseg bench engines [--n 12] [--concurrency 4] [--workers 1,2] [--out DIR]

Runs the same generated scenes (offline toolset, no disk cache, so every example computes)
with the local engine, then with the Ray engine at each ``--workers`` count on one local Ray
cluster started here (its start-up time is printed apart), and prints examples per second,
side by side with the local engine's. ``wall`` is the invocation's time with the engine's
start (the workers started, their tools built); ``work`` is the wall time ``summary.json``
records, which books that start as set-up. Then it checks every Ray run against the local one
example by example (IoU, mask, query history, ...), and runs Ray with 2 workers once more,
SIGKILLing the worker that returns the first image group, and counts the lines written.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from bench.data import load_dataset_spec
from bench.engines.base import Engine
from bench.engines.choose import open_engine
from bench.engines.compare import differing
from bench.engines.ray_cluster import import_ray
from bench.engines.ray_engine import RayEngine
from bench.engines.ray_worker import GroupResult
from bench.options import CacheOptions, DataSpec, EngineOptions, EpisodeOptions, ModelOptions, RunOptions
from bench.run_folder import read_invocations
from bench.runner import run_examples
from bench.runtime import build_runtime
from bench.samples import read_samples


def _run(out: Path, n: int, concurrency: int, engine: Engine) -> dict[str, Any]:
    """One run into ``out``; returns its invocation line."""
    options = EpisodeOptions(models=ModelOptions(toolset="offline"), cache=CacheOptions(enabled=False))
    spec = DataSpec("synthetic", n=n)
    run = RunOptions(concurrency=concurrency, bootstrap=0, quiet=True)
    rt = build_runtime(options)
    try:
        anyio.run(lambda: run_examples(rt, spec.load(), out, spec, run, engine=engine))
    finally:
        rt.close()
    return read_invocations(out)[-1]


def _row(name: str, inv: dict[str, Any], local_rate: float | None) -> list[str]:
    # invocations.jsonl books the engine's start as set-up, apart from its wall time (the work).
    work, start, n = inv["wall_s"], inv.get("engine_start_s", 0.0), inv["examples_run"]
    wall = work + start
    rate, work_rate = n / wall, n / max(work, 1e-9)
    ratio = f"{work_rate / local_rate:.2f}x" if local_rate else "1.00x"
    figures = [f"{wall:.2f}", f"{start:.2f}", f"{rate:.1f}", f"{work_rate:.1f}", ratio]
    return [name, str(inv["workers"]), str(n), *figures]


def _print_table(rows: list[list[str]]) -> None:
    head = ["engine", "workers", "examples", "wall s", "start s", "ex/s wall", "ex/s work", "work vs local"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)))


def _kill_run(out: Path, n: int, concurrency: int) -> bool:
    """Ray with 2 workers, one SIGKILLed mid-run; True when no example is lost or written twice."""
    killed: list[int] = []

    def kill_first(done: int, result: GroupResult) -> None:
        if done == 1:
            killed.append(result.pid)
            os.kill(result.pid, signal.SIGKILL)

    engine = RayEngine(EngineOptions("ray", workers=2), on_group=kill_first)
    try:
        inv = _run(out, n, concurrency, engine)
    finally:
        anyio.run(engine.aclose)
    lines = (out / "samples.jsonl").read_bytes().splitlines()
    records, _ = read_samples(out)
    expected = len(load_dataset_spec("synthetic", n))
    twice = sum(1 for c in Counter(json.loads(x)["example_id"] for x in lines).values() if c > 1)
    print(
        f"kill a worker (pid {killed[0] if killed else '-'} after the first group): "
        f"{len(lines)} lines written, {len(records)} unique example ids, {expected} expected, "
        f"{twice} written twice; worker deaths {inv['worker_deaths']}, groups redone {inv['groups_redone']}"
    )
    return len(lines) == len(records) == expected and twice == 0


def run_engine_benchmark(n: int, concurrency: int, workers: tuple[int, ...], out: Path | None) -> int:
    """Print the table, the same-answers check and the kill-a-worker line counts.

    Args:
        n: generated scenes (about 18 examples each).
        concurrency: examples in flight, all workers together.
        workers: the Ray worker counts to measure.
        out: where the run folders go (``None``: a new temporary folder).

    The defaults are ``refseg bench engines``'s (bench/cli/benchmarks.py).

    Returns:
        0, or 1 when any answer differs or the killed run lost or duplicated an example.
    """
    counts = list(workers)
    out = out or Path(tempfile.mkdtemp(prefix="refseg-engines-"))
    local = _run(out / "local", n, concurrency, open_engine(EngineOptions()))
    local_rate = local["examples_run"] / max(local["wall_s"], 1e-9)
    rows = [_row("local", local, None)]
    ray = import_ray()
    t0 = time.perf_counter()
    ray.init(num_cpus=max(counts) + 1, num_gpus=0, include_dashboard=False, log_to_driver=False)
    print(f"local Ray cluster started in {time.perf_counter() - t0:.1f} s ({max(counts) + 1} logical CPUs, "
          f"{os.cpu_count()} cores on this machine)")  # fmt: skip
    try:
        for w in counts:
            engine = RayEngine(EngineOptions("ray", workers=w))
            try:
                inv = _run(out / f"ray{w}", n, max(concurrency, w), engine)
            finally:
                anyio.run(engine.aclose)
            rows.append(_row("ray", inv, local_rate))
        _print_table(rows)
        ok = True
        for name in [f"ray{w}" for w in counts]:
            diff = differing(out / "local", out / name)
            verdict = "identical" if not diff else f"{len(diff)} differ, e.g. {diff[:3]}"
            print(f"{name} vs local: {local['examples_run']} examples, answers {verdict}")
            ok = ok and not diff
        ok = _kill_run(out / "ray2-kill", n, max(concurrency, 2)) and ok
        diff = differing(out / "local", out / "ray2-kill")
        print(f"killed run vs local: answers {'identical' if not diff else f'{len(diff)} differ'}")
    finally:
        ray.shutdown()
    print(f"run folders: {out}")
    return 0 if ok and not diff else 1
