"""``refseg bench scale``: cells of real runs against the fixed-latency endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.benchmarks.scale import (
    Cell,
    ScaleOptions,
    cell_command,
    row,
    run_scale_table,
    with_speedups,
    work_seconds,
)
from bench.cli import build_parser
from tools.errors import ConfigError, InputError


def cell(controller: str, c: int, rate: float) -> Cell:
    return Cell(controller, "local", c, 1, 8 * c, 0, 1.0, rate, 1.0, c, 20.0, 30.0, 0, 12.0, 150.0, None, 0.5)


def test_speed_up_and_efficiency_are_against_the_smallest_concurrency() -> None:
    cells = with_speedups(
        [cell("ground", 1, 2.0), cell("ground", 4, 7.0), cell("agent", 2, 1.0), cell("agent", 8, 3.0)]
    )
    assert [(x.speedup, x.efficiency) for x in cells] == [(1.0, 1.0), (3.5, 0.875), (1.0, 1.0), (3.0, 0.75)]
    assert "3.5x" in row(cells[1]) and "0.88" in row(cells[1])


def test_options_are_checked_and_cells_are_real_bench_runs() -> None:
    with pytest.raises(ConfigError, match="--controllers"):
        ScaleOptions(controllers=("oneshot",))
    with pytest.raises(ConfigError, match="--workers applies to --engine ray only"):
        ScaleOptions(workers=2)
    options = ScaleOptions(engine="ray", workers="auto", vlm_max_concurrency=8)
    cmd = cell_command(options, "loop", 16, "http://127.0.0.1:1/v1", Path("/tmp/x"))  # 8 waves x 16
    assert cmd[2:5] == ["bench.cli", "bench", "run"]
    for flags in (["--refiner", "vlm", "--max-iter", "3"], ["--tau-conf", "1"], ["--limit", "128"],
                  ["--engine", "ray", "--workers", "auto"], ["--vlm-max-concurrency", "8"]):  # fmt: skip
        assert " ".join(flags) in " ".join(cmd)
    ns = build_parser().parse_args(["bench", "scale", "--concurrency", "1,8", "--controllers", "agent"])
    assert ns.concurrency == "1,8" and ns.latency_s is None  # defaults live in ScaleOptions


@pytest.mark.slow
def test_a_small_table_runs_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ScaleOptions(
        latency_s=0.1, controllers=("ground",), concurrency=(1, 4), waves=2, min_examples=4,
        json_path=tmp_path / "scale.json",
    )  # fmt: skip
    assert run_scale_table(options) == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and printed.count("ground     local") == 2
    cells = json.loads((tmp_path / "scale.json").read_text())["cells"]
    assert [c["concurrency"] for c in cells] == [1, 4] and [c["examples"] for c in cells] == [4, 8]
    assert all(c["failed"] == 0 and c["vlm_requests_per_example"] == 1.0 for c in cells)
    assert [c["endpoint_max_in_flight"] for c in cells] == [1, 4]
    assert cells[0]["speedup"] == 1.0 and cells[1]["speedup"] > 1.5  # 4 requests at a time
    assert all(c["driver_peak_rss_mb"] > 50 and c["lag_max_ms"] is not None for c in cells)


def test_a_cells_rate_counts_the_work_once_without_the_engine_start() -> None:
    """``wall_s`` already leaves set-up and the Ray cluster's start out: taking the start off
    again made a Ray cell of 8 one-second requests in a row read 1.7 examples/s."""
    invocation = {"wall_s": 8.23, "engine_start_s": 3.51, "setup_s": 0.0, "examples_run": 8}
    assert work_seconds(invocation) == 8.23
    assert invocation["examples_run"] / work_seconds(invocation) < 1.0  # 1 s per request, one at a time


def test_a_used_out_folder_and_repeated_levels_are_refused_in_one_line(tmp_path: Path) -> None:
    """A second scale run into the same --out would resume each cell (warm cache, and the
    endpoint's new port fails the resume check); a level given twice would resume itself."""
    (tmp_path / "ground-local-c1").mkdir()
    with pytest.raises(InputError, match="not empty"):
        ScaleOptions(out=tmp_path)
    with pytest.raises(ConfigError, match="each level once"):
        ScaleOptions(concurrency=(2, 2))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        ScaleOptions(out=tmp_path / "a-file")
    assert ScaleOptions(out=tmp_path / "new").out == tmp_path / "new"
