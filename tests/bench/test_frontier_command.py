"""``refseg bench frontier RUN``: the Pareto table, frontier.png, calibration.png and the JSON of
every grid point; the ends agree with real runs; runs it cannot replay are one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_runner import run, synthetic
from PIL import Image as PILImage

from bench.cli import main
from bench.report.markdown import write_run_report
from bench.samples import read_summary

POINT_KEYS = {"tau_conf", "tau_gap", "miou", "miou_ci", "vlm_calls_per_1k", "usd_per_1k", "asked_fraction"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A loop run at 1/1, one at the default thresholds and a one-shot run (2 scenes)."""
    root = tmp_path_factory.mktemp("frontier-runs")
    examples = synthetic(2)
    run(root / "ask", None, examples, episode={"tau_conf": 1.0, "tau_gap": 1.0})
    run(root / "default", None, examples)
    run(root / "oneshot", None, examples, episode={"controller": "oneshot"})
    return {"ask": root / "ask", "default": root / "default", "oneshot": root / "oneshot"}


@pytest.mark.slow
def test_frontier_writes_the_table_the_figures_and_every_grid_point(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        ["bench", "frontier", str(runs["ask"]), "--grid", "0.1", "--out", str(out), "--bootstrap", "100"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "one-shot" in printed and "always asks" in printed and "Pareto" in printed
    assert "default thresholds" in printed and "guard calibration" in printed
    for name in ("frontier.png", "calibration.png"):
        pixels = np.asarray(PILImage.open(out / name))
        assert pixels.shape[0] > 300 and pixels.std() > 0  # a drawn figure, not a blank
    data = json.loads((out / "frontier.json").read_text())
    points = data["points"]
    assert len(points) == 11 * 11 and all(set(p) >= POINT_KEYS for p in points)
    assert data["metric"] == "miou" and data["cost_axis"] == "asks"  # rules refiner: no VLM, $0
    assert all(p["usd_per_1k"] == 0 and p["vlm_calls_per_1k"] == 0 for p in points)
    # The ends are real runs: one-shot (0/0) is the oneshot run, always-ask (1/1) the run itself.
    oneshot, asked = read_summary(runs["oneshot"]), read_summary(runs["ask"])
    assert oneshot is not None and asked is not None
    assert data["one_shot"]["miou"] == oneshot.metrics.value("miou")
    assert data["always_ask"]["miou"] == asked.metrics.value("miou")
    assert data["one_shot"]["asks_per_1k"] == 0 and data["always_ask"]["escalated_fraction"] == 1.0
    # The default mark is what a run at the default thresholds gives.
    default = read_summary(runs["default"])
    assert default is not None and data["marks"][0]["miou"] == default.metrics.value("miou")
    # Pareto: no point is cheaper-or-equal and better than a Pareto point.
    front = [p for p in points if p["pareto"]]
    assert front
    for p in front:
        assert not any(q["asks_per_1k"] <= p["asks_per_1k"] and q["miou"] > p["miou"] for q in points), p
    lo, hi = data["always_ask"]["miou_ci"]
    assert lo <= data["always_ask"]["miou"] <= hi
    cal = data["calibration"][0]
    assert cal["ranker"] == "attribute_rank" and cal["steps"] >= len(
        set(
            json.loads(line)["example_id"]
            for line in (runs["ask"] / "samples.jsonl").read_text().splitlines()
        )
    )


def test_frontier_json_goes_where_asked(runs: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "points.json"
    out = tmp_path / "figs"
    assert (
        main(
            [
                "bench",
                "frontier",
                str(runs["ask"]),
                "--grid",
                "0,0.5:0,0.2",
                "--json",
                str(target),
                "--out",
                str(out),
                "--mark",
                "0.5,0.2",
            ]
        )
        == 0
    )
    data = json.loads(target.read_text())
    assert [(p["tau_conf"], p["tau_gap"]) for p in data["points"]] == [
        (c, g) for c in (0.0, 0.5, 1.0) for g in (0.0, 0.2, 1.0)
    ]
    assert not (out / "frontier.json").exists() and (out / "frontier.png").exists()


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        ("default", "was made at tau_conf=0.5, tau_gap=0.2"),
        ("oneshot", "oneshot run, which never asks for help"),
    ],
)
def test_a_run_it_cannot_replay_is_one_line_that_says_how_to_make_one(
    runs: dict[str, Path], which: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "frontier", str(runs[which])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert "--tau-conf 1 --tau-gap 1" in err


def test_records_written_before_version_2_are_refused(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_bytes((runs["ask"] / "config.json").read_bytes())
    lines = []
    for line in (runs["ask"] / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["schema_version"] = 1
        for step in rec["rank_steps"]:
            for key in ("conf", "gap", "spent"):
                step.pop(key)
        lines.append(json.dumps(rec))
    (old / "samples.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["bench", "frontier", str(old)]) == 2
    err = capsys.readouterr().err
    assert "written before ranking steps carried conf, gap" in err and "schema version 1" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--grid", "fine"], "--grid takes a step"),
        (["--grid", "0,1.5:0"], "thresholds lie in [0, 1]"),
        (["--grid", "0"], "a step lies in (0, 1]"),
        (["--mark", "0.5"], "TAU_CONF,TAU_GAP"),
        (["--bootstrap", "-1"], "--bootstrap must be >= 0"),
    ],
)
def test_bad_options_are_one_line(
    runs: dict[str, Path], args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "frontier", str(runs["ask"]), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_not_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "frontier", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_run_and_report_reports_show_the_frontier_and_the_calibration(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    ask = tmp_path / "ask"
    shutil.copytree(runs["ask"], ask)
    summary = read_summary(ask)
    assert summary is not None
    report = write_run_report(ask, summary).read_text()  # what `bench run` writes
    assert "## Cost-quality frontier" in report and "(figures/frontier.png)" in report
    assert "## Guard calibration" in report and "(figures/calibration.png)" in report
    assert (ask / "figures" / "frontier.png").exists() and (ask / "frontier.json").exists()
    out = tmp_path / "report"
    assert main(["bench", "report", str(runs["default"]), str(runs["oneshot"]), "--out", str(out)]) == 0
    other = (out / "report.md").read_text()  # neither at 1/1: calibration only
    assert "## Guard calibration" in other and "## Cost-quality frontier" not in other
    assert "| attribute_rank |" in other
