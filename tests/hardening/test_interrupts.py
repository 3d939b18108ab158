"""Case 9: Ctrl-C at any moment of `refseg` (start-up imports included) is one line, exit 130."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from helpers_chaos import chaos_row

from bench.chaos.startup import interpreter_start_s, one_line, refseg_command


def test_ctrl_c_during_start_up_and_run_is_one_line_and_the_run_resumes() -> None:
    row = chaos_row("Ctrl-C during start-up")
    assert row.survived, row.problems
    assert row.injected == row.detected == 5 and row.lost == 0 and row.duplicated == 0


def test_ctrl_c_while_refseg_imports_its_commands(tmp_path: Path) -> None:
    start, interrupted = interpreter_start_s(), 0
    for delay in (0.05, 0.15, 0.3):  # past Python's own start-up, inside refseg's imports
        proc = subprocess.Popen(
            [*refseg_command(), "tools"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(start + delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # the command finished before the signal: nothing to interrupt
        assert proc.returncode == 130 and one_line(err), (delay, proc.returncode, err[-400:])
        interrupted += 1
    assert interrupted > 0
