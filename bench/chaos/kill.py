"""The kill-and-resume row: runs SIGKILLed at random points (some mid-line), then resumed.

The kill in the middle of a result line is the scorecard's own hook, :func:`kill_mid_line`,
injected into the sample writer of a child process; the product has no such hook.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

from bench.chaos.result import RowResult, account, read_json
from bench.chaos.runs import OfflineRun, run_offline, spawn_offline
from bench.samples import SAMPLES, WriteHook

KILL_TIMEOUT_S = 120.0


def kill_mid_line(at_line: int) -> WriteHook:
    """A sample-writer hook: the ``at_line``-th line is written half, synced, then SIGKILL."""

    def hook(number: int, data: bytes, fh: Any) -> None:
        if number == at_line:
            out = cast(BinaryIO, fh)
            out.write(data[: len(data) // 2])
            os.fsync(out.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def kill_plan(seed: int) -> list[tuple[str, float]]:
    """Six kill points: three in the middle of a result line, two after some lines, one at a
    random moment (seconds after the invocation's first line)."""
    rng = random.Random(seed)
    return [
        ("torn", rng.randint(2, 5)),
        ("after_lines", rng.randint(2, 8)),
        ("torn", 1),
        ("at_time", rng.uniform(0.0, 0.3)),
        ("torn", rng.randint(2, 6)),
        ("after_lines", rng.randint(1, 6)),
    ]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _torn_tail(path: Path) -> int | None:
    """Offset where a torn last line starts, or None when the file ends with a newline."""
    data = path.read_bytes() if path.exists() else b""
    if not data or data.endswith(b"\n"):
        return None
    return data.rfind(b"\n") + 1


def _repaired(path: Path, offset: int) -> bool:
    """The bytes from ``offset`` are now whole lines (the torn tail was cut and redone)."""
    import json

    tail = path.read_bytes()[offset:]
    try:
        return all(isinstance(json.loads(line), dict) for line in tail.splitlines())
    except ValueError:
        return False


def _run_until_killed(run: OfflineRun, kind: str, value: float, samples: Path) -> int:
    """One child invocation, killed as ``kind`` says; returns its return code."""
    before = _lines(samples)
    proc = spawn_offline(run, kill_at_line=int(value) if kind == "torn" else 0)
    start, first_line = time.monotonic(), None
    while proc.poll() is None and time.monotonic() - start < KILL_TIMEOUT_S:
        now = _lines(samples)
        if first_line is None and now > before:
            first_line = time.monotonic()
        if (kind == "after_lines" and now >= before + value) or (
            kind == "at_time" and first_line is not None and time.monotonic() - first_line >= value
        ):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.communicate(timeout=KILL_TIMEOUT_S)
    return int(proc.returncode)


def kill_resume_row(workdir: Path, seed: int = 0, *, n_scenes: int = 6) -> RowResult:
    """SIGKILL bench runs at the points of :func:`kill_plan`, then finish.

    After each kill the next invocation must cut a torn last line off (and redo it); the
    last, uninterrupted invocation must leave every example exactly once, and the metrics
    must equal those of a run that was never interrupted.
    """
    row = RowResult("SIGKILL + resume")
    t0 = time.perf_counter()
    run_dir, ref_dir = workdir / "kill-run", workdir / "kill-reference"
    episode = {"controller": "loop"}
    run = OfflineRun(run_dir, workdir / "kill-cache", n=n_scenes, episode=episode, bootstrap=100)
    ids = run_offline(
        OfflineRun(ref_dir, workdir / "kill-ref-cache", n=n_scenes, episode=episode, bootstrap=100)
    ).example_ids
    samples = run_dir / SAMPLES
    kills, torn_seen, repaired, log = 0, 0, 0, []
    pending: int | None = None  # offset of a torn line the next invocation must repair
    code = 0
    for kind, value in [*kill_plan(seed), ("finish", 0.0)]:
        before = _lines(samples)
        code = _run_until_killed(run, kind, value, samples)
        if pending is not None and _lines(samples) > before:  # it got far enough to repair
            repaired += _repaired(samples, pending)
            pending = None
        kills += code == -signal.SIGKILL and kind != "finish"
        tail = _torn_tail(samples)
        if tail is not None:
            torn_seen += 1
            pending = tail
        log.append(f"{kind}={value:g}: rc {code}, lines {before}->{_lines(samples)}, torn {tail is not None}")
    account(row, run_dir, ids, code)
    row.injected = kills
    row.detected = repaired
    row.details.update(kill_log=log, torn_lines=torn_seen, repaired=repaired)
    row.check(kills >= 5, f"only {kills} of the kill points killed a run")
    row.check(pending is None, "the run ended with a torn last line")
    row.check(
        torn_seen >= 3 and repaired == torn_seen, f"{torn_seen} torn line(s), {repaired} cut and redone"
    )
    got = read_json(run_dir / "summary.json")["metrics"]
    want = read_json(ref_dir / "summary.json")["metrics"]
    row.check(got == want, "metrics differ from the uninterrupted run")
    row.details["miou"] = got.get("miou")
    row.seconds = time.perf_counter() - t0
    return row
