"""Ctrl-C at any moment of `refseg` (start-up imports included) is one line, exit 130."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.chaos.startup import (
    in_python_start_up,
    interpreter_start_s,
    interrupt_start_up,
    one_line,
    refseg_command,
)

pytestmark = pytest.mark.slow


def test_ctrl_c_during_start_up_and_run_is_one_line_and_the_run_resumes() -> None:
    row = chaos_row("Ctrl-C during start-up")
    assert row.survived, row.problems
    assert row.injected == row.detected == 5 and row.lost == 0 and row.duplicated == 0


def test_ctrl_c_while_refseg_imports_its_commands(tmp_path: Path) -> None:
    start, interrupted = interpreter_start_s(), 0
    for delay in (0.05, 0.15, 0.3):  # past Python's own start-up, inside refseg's imports
        code, err, _ = interrupt_start_up([*refseg_command(), "tools"], start + delay)
        if code == 0:
            continue  # the command finished before the signal: nothing to interrupt
        assert code == 130 and one_line(err), (delay, code, err[-400:])
        interrupted += 1
    assert interrupted > 0


def test_a_signal_in_pythons_own_start_up_is_told_from_one_in_refseg() -> None:
    pythons = 'Traceback (most recent call last):\n  File "<frozen site>", line 1\nKeyboardInterrupt\n'
    assert in_python_start_up(130, pythons)
    root = Path(in_python_start_up.__code__.co_filename).resolve().parents[2]
    frame = f'  File "{root}/bench/cli/__init__.py", line 9'
    ours = f"Traceback (most recent call last):\n{frame}\nKeyboardInterrupt\n"
    assert not in_python_start_up(130, ours)
    assert not in_python_start_up(130, "refseg: interrupted (Ctrl-C)\n")
