"""A watchdog that takes the Ray engine's own local cluster down with its driver.

``ray.init()`` without an address starts the cluster's processes as the driver's children.
When the driver is killed (SIGKILL, the OOM killer), Ray's own fate sharing ends the raylet
and the GCS at once, but not the raylet's agents (the dashboard agent and the runtime-env
agent, ~180 MB together): they notice the raylet's death quickly, then try to report it to the
dead GCS with a timeout Ray fixes at 60 seconds (``ray._private.process_watcher``), so they
stay 30 to 120 s. Nothing in Ray's configuration shortens that wait.

So :func:`start` launches this module as a small process (standard library only) in its own
session, given the cluster's process ids and start times; it reads a pipe from the driver.
When the pipe closes without the goodbye :meth:`Watchdog.release` sends (the driver died, or
exited without closing the engine), it ends those processes that still run: SIGTERM, then
SIGKILL after :data:`GRACE_S`. A process id is signalled only while its start time is the
recorded one, so an id the system reused is never touched. Linux only (``/proc``); elsewhere
:func:`start` returns ``None`` and the agents exit on Ray's own timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

GOODBYE = "goodbye"
GRACE_S = 2.0


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or
    ``None`` when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name (field 2) may hold spaces and parentheses
    return int(fields[19]) if len(fields) > 19 else None


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text(encoding="ascii").split()]
    except OSError:
        return []


def ray_descendants(root: int) -> list[tuple[int, int]]:
    """``(pid, start time)`` of the Ray processes below ``root``: the GCS, the raylet, its
    agents and workers (their command lines run Ray's own files, or read ``ray::...``)."""
    out, todo = [], _children(root)
    while todo:
        pid = todo.pop()
        todo += _children(pid)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        started = start_time(pid)
        if started is not None and (f"{os.sep}ray{os.sep}" in cmd or cmd.startswith("ray::")):
            out.append((pid, started))
    return out


class Watchdog:
    """The driver's end of the watchdog's pipe (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc

    def release(self) -> None:
        """The cluster was shut down in order: tell the watchdog to exit without acting."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):  # it is gone already
                self.proc.stdin.write(f"{GOODBYE}\n".encode())
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(processes: Iterable[tuple[int, int]]) -> Watchdog | None:
    """Watch ``processes`` (``(pid, start time)``) for this driver; ``None`` without ``/proc``."""
    targets = list(processes)
    if not Path("/proc/self/stat").exists() or not targets:
        return None
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.engines.ray_reaper"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the driver's process group does not end it first
    )
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(targets) + "\n").encode())
    proc.stdin.flush()
    return Watchdog(proc)


def end(targets: list[tuple[int, int]]) -> None:
    """SIGTERM each target still running as itself, then SIGKILL what is left after the grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid, started in targets if start_time(pid) == started]
        for pid in alive:
            with contextlib.suppress(OSError):  # gone in between
                os.kill(pid, sig)
        deadline = time.monotonic() + GRACE_S
        while sig == signal.SIGTERM and time.monotonic() < deadline:
            if all(start_time(pid) != started for pid, started in targets):
                return
            time.sleep(0.1)


def main() -> int:
    lines = sys.stdin.read().splitlines()  # returns when the driver closes the pipe or dies
    if not lines or (len(lines) > 1 and lines[-1] == GOODBYE):
        return 0
    end([(int(pid), int(started)) for pid, started in json.loads(lines[0])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
