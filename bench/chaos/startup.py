"""The Ctrl-C row: SIGINT to ``refseg bench run`` while it starts (imports) and while it runs.

Each interrupted invocation must print exactly one line and exit 130; the run then resumes
to every example exactly once. The delays start after the Python interpreter's own start-up
(measured first), since a signal before refseg's first line of code is Python's to handle;
on a busy machine that start-up can take longer than measured, so a signal that still
landed in it (a traceback with no frame of refseg's own files) is sent again a little later.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline
from bench.samples import SAMPLES

START_DELAYS_S = (0.0, 0.1, 0.25, 0.5)  # after the interpreter's start-up: during the imports
TIMEOUT_S = 300.0
PROJECT_PACKAGES = ("bench", "agent", "tools", "cache", "checkpoints")
LATER_S = 0.05  # how much later a signal that landed in Python's own start-up is sent again


def one_line(err: str) -> bool:
    """stderr is exactly refseg's one interrupted line."""
    return len(err.strip().splitlines()) == 1 and err.startswith("refseg: interrupted")


def in_python_start_up(code: int, err: str) -> bool:
    """The signal landed before refseg's first line ran: Python's own KeyboardInterrupt
    traceback, with no frame in the project's packages."""
    root = Path(__file__).resolve().parents[2]
    ours = [f'File "{root / pkg}' for pkg in PROJECT_PACKAGES]
    interrupted = code != 0 and err.rstrip().endswith("KeyboardInterrupt")
    return interrupted and not any(frame in err for frame in ours)


def refseg_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m bench.cli``."""
    script = Path(sys.executable).with_name("refseg")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bench.cli"]


def interpreter_start_s() -> float:
    """Seconds this interpreter takes to start (site, .pth files) on this machine, now."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import re"], check=True, timeout=TIMEOUT_S)
        times.append(time.perf_counter() - t0)
    return max(times) * 1.5  # margin: the machine may be busier in a moment


def _bench_argv(run_dir: Path) -> list[str]:
    return [*refseg_command(), "bench", "run", "--dataset", "synthetic", "--n", "1",
            "--toolset", "offline", "--controller", "oneshot", "--no-cache", "--quiet",
            "--bootstrap", "0", "--concurrency", "2", "--device", "cpu",
            "--out", str(run_dir)]  # fmt: skip


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def interrupt_mid_run(run_dir: Path) -> tuple[int, str]:
    """Start ``refseg bench run`` and send SIGINT once it has written a result line.
    Returns the exit code and stderr."""
    samples = run_dir / SAMPLES
    before = _lines(samples)
    return _interrupt(_bench_argv(run_dir), when=lambda _elapsed: _lines(samples) > before)


def _interrupt(argv: list[str], when: Callable[[float], bool]) -> tuple[int, str]:
    """Start ``argv`` and send SIGINT as soon as ``when(seconds since start)`` is true;
    returns the exit code and stderr."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < TIMEOUT_S:
        if when(time.monotonic() - t0):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    return int(proc.returncode), err


def _after(seconds: float) -> Callable[[float], bool]:
    """``when`` for :func:`_interrupt`: ``seconds`` after the start."""
    return lambda elapsed: elapsed >= seconds


def interrupt_start_up(argv: list[str], delay_s: float, tries: int = 5) -> tuple[int, str, float]:
    """SIGINT ``argv`` after ``delay_s``; again ``LATER_S`` later each time the signal landed
    in Python's own start-up. Returns the exit code, stderr and the delay that counted."""
    for _ in range(tries):
        code, err = _interrupt(argv, when=_after(delay_s))
        if not in_python_start_up(code, err):
            break
        delay_s += LATER_S
    return code, err, delay_s


def ctrl_c_row(workdir: Path, seed: int = 0) -> RowResult:
    """Ctrl-C during start-up and during the run: one line, exit 130; then resume."""
    row = RowResult("Ctrl-C during start-up")
    t0 = time.perf_counter()
    run_dir = workdir / "ctrl-c-run"
    start = interpreter_start_s()
    outcomes: list[tuple[float | None, int, str]] = []
    for d in START_DELAYS_S:
        code, err, sent_at = interrupt_start_up(_bench_argv(run_dir), start + d)
        outcomes.append((sent_at - start, code, err))
    outcomes.append((None, *interrupt_mid_run(run_dir)))
    row.injected = len(outcomes)
    row.detected = sum(1 for _, code, err in outcomes if code == 130 and one_line(err))
    for delay, code, err in outcomes:
        when = "mid-run" if delay is None else f"{start + delay:.2f} s"
        row.check(code == 130 and one_line(err), f"SIGINT at {when}: exit {code}, {err[-300:]!r}")
    final = run_offline(OfflineRun(run_dir, None, n=1, episode={"controller": "oneshot"}))
    account(row, run_dir, final.example_ids, final.exit_code)
    row.details.update(interpreter_start_s=start, outcomes=[(d, c) for d, c, _ in outcomes])
    row.seconds = time.perf_counter() - t0
    return row
