"""Throughput of the engines on the offline toolset, their same-answers check, a killed worker.

    refseg bench engines [--n 12] [--concurrency 4] [--workers 1,2] [--out DIR]

Runs the same generated scenes (offline toolset, no disk cache, so every example computes)
with the local engine, then with the Ray engine at each ``--workers`` count on one local Ray
cluster started here (its start-up time is printed apart), and prints examples per second,
side by side with the local engine's. ``wall`` is the invocation's time with the engine's
start (the workers started, their tools built); ``work`` is the wall time ``summary.json``
records, which books that start as set-up. Then it checks every Ray run against the local one
example by example (IoU, mask, query history, ...), and runs Ray with 2 workers once more,
SIGKILLing the worker that returns the first example (the rest of its image group is still
running there), and counts the lines written. A kill that lands after the killed worker's work
was done (few scenes: worker deaths 0) tests nothing: the run is tried again with twice the
scenes, and after three tries the command says the kill was not tested and exits 1.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.data import load_dataset_spec
from bench.engines.base import Engine
from bench.engines.choose import open_engine
from bench.engines.compare import answers, differing
from bench.engines.ray_cluster import cluster_messages_to_stderr, import_ray
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


@dataclass(frozen=True)
class KillOutcome:
    """What a run with a killed worker wrote, and whether the engine saw the death."""

    n: int
    pid: int | None
    lines: int
    unique: int
    expected: int
    twice: int
    deaths: int
    redone: int

    @property
    def intact(self) -> bool:
        """No example lost or written twice."""
        return self.lines == self.unique == self.expected and self.twice == 0

    @property
    def observed(self) -> bool:
        """The engine saw the worker die while it still had work (a kill after the last
        group was done tests nothing)."""
        return self.deaths > 0

    def line(self) -> str:
        killed = f"pid {self.pid}" if self.pid is not None else "no worker"
        text = (
            f"kill a worker ({killed} after the first example, {self.n} scenes): {self.lines} lines written, "
            f"{self.unique} unique example ids, {self.expected} expected, {self.twice} written twice; "
            f"worker deaths {self.deaths}, groups redone {self.redone}"
        )
        if not self.observed:
            text += " (the kill came after the work was done: nothing was tested)"
        return text


def _kill_once(out: Path, n: int, concurrency: int) -> KillOutcome:
    """Ray with 2 workers, the one that returns the first example SIGKILLed."""
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
    twice = sum(1 for c in Counter(json.loads(x)["example_id"] for x in lines).values() if c > 1)
    expected = len(load_dataset_spec("synthetic", n))
    pid = killed[0] if killed else None
    return KillOutcome(
        n, pid, len(lines), len(records), expected, twice, inv["worker_deaths"], inv["groups_redone"]
    )


KILL_TRIES = 3


def kill_run(out: Path, n: int, concurrency: int, attempt: Any = _kill_once) -> tuple[bool, Path]:
    """The killed-worker run, tried again with twice the scenes while the kill came too late
    (the killed worker had no work left); says so when it never landed.

    Returns:
        ``(ok, folder)``: ok when the death was seen and no example was lost or written
        twice; the run folder of the last try.
    """
    for k in range(KILL_TRIES):
        folder = out if k == 0 else out.with_name(f"{out.name}-{k + 1}")
        outcome = attempt(folder, n * 2**k, concurrency)
        print(outcome.line())
        if outcome.observed or not outcome.intact:
            return outcome.intact and outcome.observed, folder
        if k + 1 < KILL_TRIES:
            print(f"  retrying with {n * 2 ** (k + 1)} scenes, so the killed worker still has work")
    print(f"kill a worker: not tested: in {KILL_TRIES} tries the kill always came after the work was done")
    return False, folder


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
    cluster_messages_to_stderr()  # the killed worker's "(raylet) A worker died" is not a result
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
        killed_ok, folder = kill_run(out / "ray2-kill", n, max(concurrency, 2))
        ok = killed_ok and ok
        local_ids = set(answers(out / "local"))  # a retry ran more scenes: compare the shared ones
        diff = [k for k in differing(out / "local", folder) if k in local_ids]
        verdict = "identical" if not diff else f"{len(diff)} differ"
        print(f"killed run vs local: answers {verdict} ({len(local_ids)} examples compared)")
    finally:
        ray.shutdown()
    print(f"run folders: {out}")
    return 0 if ok and not diff else 1
