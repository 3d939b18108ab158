"""``refseg bench run`` errors the user can fix: one line each, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


def test_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a-file"
    target.write_text("x", encoding="utf-8")
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    code = main([*argv, "--no-cache", "--quiet", "--bootstrap", "0", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("refseg: error:") and "Traceback" not in err
