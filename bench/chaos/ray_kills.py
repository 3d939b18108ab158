"""The ``Ray driver and worker kills`` row: what a user sees and what stays running.

- A worker SIGKILLed in the middle of ``refseg bench run --engine ray`` (the CLI, a child
  process): its groups are redone elsewhere, and stdout still starts with the run's summary
  (Ray's "(raylet) A worker died ..." message went to stdout's first line before).
- A driver SIGKILLed mid-line while running on the local cluster it started: within
  :data:`GONE_WITHIN_S` no process of that cluster is left (its two agents, ~180 MB, stayed 30
  to 120 s before), and a resume on the local engine completes the run, nothing lost or twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline, spawn_offline
from bench.engines.ray_reaper import ray_descendants, start_time
from bench.options import DataSpec

GONE_WITHIN_S = 15.0
RUN_GROUP = "ray::EpisodeWorker.run_group"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_a_worker(run_dir: Path) -> tuple[subprocess.CompletedProcess[str], int | None]:
    """The CLI on the Ray engine; the first worker seen running a group is SIGKILLed."""
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "2", "--toolset", "offline", "--no-cache"]
    argv += ["--quiet", "--bootstrap", "0", "--device", "cpu", "--controller", "loop", "--engine", "ray"]
    argv += ["--workers", "2", "--concurrency", "2", "--out", str(run_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed, deadline = None, time.monotonic() + 300
    while proc.poll() is None and killed is None and time.monotonic() < deadline:
        busy = [pid for pid, _ in ray_descendants(proc.pid) if _cmdline(pid).startswith(RUN_GROUP)]
        if busy:
            os.kill(busy[0], signal.SIGKILL)  # a worker of the cluster this child started
            killed = busy[0]
        time.sleep(0.1)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), killed


def _worker_part(row: RowResult, workdir: Path) -> None:
    run_dir = workdir / "worker-kill-run"
    done, killed = _kill_a_worker(run_dir)
    ids = [ex.example_id for ex in DataSpec("synthetic", n=2).load()]
    sub = RowResult("worker")
    account(sub, run_dir, ids, done.returncode)
    row.lost, row.duplicated, row.examples = (
        row.lost + sub.lost,
        row.duplicated + sub.duplicated,
        sub.examples,
    )
    row.problems += [f"worker kill: {p}" for p in sub.problems]
    first = (done.stdout.splitlines() or [""])[0]
    clean = first.startswith(f"{run_dir.name}:") and "(raylet)" not in done.stdout
    row.check(killed is not None, "no worker was seen running a group (nothing tested)")
    row.check(clean, f"stdout starts with {first[:120]!r}")
    row.injected += 1
    row.detected += killed is not None and clean
    row.details["stdout_first_line"] = first[:200]


def _kill_the_driver(run: OfflineRun) -> tuple[set[tuple[int, int]], float | None]:
    """``run`` in a child that SIGKILLs itself mid-line; the Ray processes it had below it, and
    the seconds from its death until none of them runs (``None``: still there after 30 s)."""
    proc = spawn_offline(run, kill_at_line=3)
    cluster: set[tuple[int, int]] = set()
    while proc.poll() is None:
        cluster |= set(ray_descendants(proc.pid))
        time.sleep(0.2)
    proc.communicate()
    died, gone = time.monotonic(), None
    while time.monotonic() - died < 30:
        if all(start_time(pid) != started for pid, started in cluster):
            gone = time.monotonic() - died
            break
        time.sleep(0.2)
    for pid, started in cluster:  # ours (below the child we started); never left running
        if start_time(pid) == started:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return cluster, gone


def _driver_part(row: RowResult, workdir: Path) -> None:
    run = OfflineRun(
        workdir / "driver-kill-run", None, n=1, concurrency=2, engine={"name": "ray", "workers": 1}
    )
    cluster, gone = _kill_the_driver(run)
    resumed = run_offline(OfflineRun(run.run_dir, None, n=1, concurrency=2))  # the local engine
    sub = RowResult("driver")
    account(sub, run.run_dir, resumed.example_ids, resumed.exit_code)
    row.lost, row.duplicated = row.lost + sub.lost, row.duplicated + sub.duplicated
    row.examples += sub.examples
    row.problems += [f"driver kill: {p}" for p in sub.problems]
    in_time = gone is not None and gone < GONE_WITHIN_S
    row.check(len(cluster) >= 3, f"only {len(cluster)} Ray processes were seen (nothing tested)")
    row.check(in_time, f"the killed driver's cluster was still running after {gone or 30:.0f} s")
    row.injected += 1
    row.detected += in_time and len(cluster) >= 3
    row.details.update(cluster_processes=len(cluster), cluster_gone_after_s=gone)


def ray_kills_row(workdir: Path, seed: int = 0) -> RowResult:
    """A worker killed mid-run, a driver killed mid-line: clean stdout, nothing left running."""
    row = RowResult("Ray driver and worker kills")
    t0 = time.perf_counter()
    _worker_part(row, workdir)
    _driver_part(row, workdir)
    row.seconds = time.perf_counter() - t0
    return row
