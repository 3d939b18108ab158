"""Reports, terminal tables, and case galleries over real (offline-toolset) runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_runner import run, synthetic

from bench.cli import main
from bench.options import DataSpec
from bench.records import SampleRecord, Summary
from bench.report.cases import pick_cases
from bench.report.markdown import print_summary, print_table, write_report
from bench.report.run_reader import RunView, load_run, load_runs
from bench.report.tables import md_table, text_table
from tools.errors import InputError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    examples = synthetic(2)
    run(base / "oneshot", base / "cache", examples, episode={"controller": "oneshot"}, bootstrap=100)
    run(base / "loop", base / "cache", examples, episode={"controller": "loop", "max_iter": 2}, bootstrap=100)
    run(
        base / "oneshot_blur9",
        base / "cache",
        examples,
        episode={"controller": "oneshot"},
        spec=DataSpec("synthetic", n=2, perturb="blur9"),
    )
    return base / "oneshot", base / "loop"


@pytest.mark.slow
def test_report_of_several_runs_side_by_side(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    runs = load_runs([a, b, a.parent / "oneshot_blur9"])
    path = write_report(tmp_path / "rep", runs, title="T", notes=["a note"])
    text = path.read_text()
    assert text.startswith("# T") and "- a note" in text
    for heading in (
        "## Accuracy",
        "## Reliability",
        "## By object size",
        "## Cost per tool",
        "## Time and memory",
    ):
        assert heading in text
    miou = runs[1].summary.metrics.value("miou")
    assert f"| loop | loop(rules) x2 | clean | 2 | {len(runs[1].ious)} | 0 | {miou:.3f} |" in text
    assert "| oneshot | " in text and "blur9" in text
    figs = {p.name for p in (tmp_path / "rep" / "figures").iterdir()}
    assert figs == {"iou_hist.png", "miou_vs_iter.png", "reliability.png", "size_buckets.png", "cost.png"}
    for name in figs:
        assert (tmp_path / "rep" / "figures" / name).read_bytes().startswith(PNG)
        assert f"(figures/{name})" in text


def test_single_run_report_has_no_comparison_figures(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    path = write_report(tmp_path / "one", load_runs([two_runs[0]]))
    figs = {p.name for p in (tmp_path / "one" / "figures").iterdir()}
    assert "reliability.png" not in figs and "miou_vs_iter.png" not in figs
    assert "## Reliability" not in path.read_text()


def test_load_run_recomputes_a_missing_summary(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a = two_runs[0]
    before = json.loads((a / "summary.json").read_text())
    (a / "summary.json").unlink()
    again = load_run(a)
    assert again.summary.metrics.value("miou") == pytest.approx(before["metrics"]["miou"])
    assert (a / "summary.json").exists()
    with pytest.raises(InputError, match="not a run folder"):
        load_run(tmp_path)


def test_tables_align_and_escape(capsys: pytest.CaptureFixture[str], two_runs: tuple[Path, Path]) -> None:
    table = text_table(["a", "long header"], [["xxxxx", "1"], ["y", "22"]]).splitlines()
    assert table[0] == "a      long header"
    assert table[2] == "xxxxx  1          "
    assert md_table(["h"], [["a|b"]]).splitlines()[2] == "| a\\|b |"
    print_table(load_runs(list(two_runs)))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "method", "perturb"]
    assert out[2].startswith("oneshot ") and out[3].startswith("loop ")


def test_console_summary_marks_cold_cost_that_leaves_out_unpriced_hits(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    summary = Summary.model_validate_json((two_runs[0] / "summary.json").read_text())
    tools = summary.costs.tools
    tools["region_propose"].cold_unknown = 2  # hits on records an older version wrote
    tools["attribute_rank"].cold_unknown = 0
    print_summary("r", summary)
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert ", cold ≥" in lines["region_propose"]
    assert ", cold ≥" not in lines["attribute_rank"] and ", cold " in lines["attribute_rank"]


@pytest.mark.slow
def test_cli_report_with_the_paired_comparison(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "report", str(two_runs[0]), str(two_runs[1]), "--out", str(tmp_path / "r")]
    assert main([*args, "--tolerance", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed
    assert "loop - oneshot: mIoU +" in printed
    assert "(95% CI, 2 images resampled; only 2 images: a rough interval)" in printed
    assert "(|dIoU| <= 0.05)" in printed and "of 34 paired expressions" in printed
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Paired comparison" in report and "| loop vs oneshot | 2 | 34 | " in report


def test_pick_cases_by_iou_difference() -> None:
    def rec(example_id: str, iou: float, index: int) -> SampleRecord:
        return SampleRecord(index=index, example_id=example_id, image_id="i", sentence="s", iou=iou)

    a = {f"e{i}": rec(f"e{i}", v, i) for i, v in enumerate([0.1, 0.9, 0.5, 0.5, 0.0, 1.0])}
    b = {f"e{i}": rec(f"e{i}", v, i) for i, v in enumerate([0.8, 0.2, 0.5, 0.95, 0.0, 1.0])}
    b["only_b"] = rec("only_b", 1.0, 9)
    picked = pick_cases(a, b, k=2, tolerance=0.01)
    assert [p["example_id"] for p in picked["improved"]] == ["e0", "e3"]
    assert [p["example_id"] for p in picked["degraded"]] == ["e1"]
    assert [p["example_id"] for p in picked["unchanged"]] == ["e4", "e5"]  # spread: lowest and highest
    assert picked["improved"][0]["diff"] == pytest.approx(0.7)


@pytest.mark.slow
def test_case_galleries(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    assert main(["bench", "cases", str(a), str(b), "--out", str(tmp_path / "cases"), "--k", "3"]) == 0
    picked = json.loads((tmp_path / "cases" / "cases.json").read_text())
    totals = picked.pop("totals")
    assert set(picked) == {"improved", "degraded", "unchanged"}
    # The totals count every paired example, not the gallery sizes; the CLI prints both.
    assert totals["paired"] == totals["improved"] + totals["degraded"] + totals["unchanged"] == 34
    assert totals["unchanged"] > len(picked["unchanged"]) == 3
    printed = capsys.readouterr().out
    assert f"improved {totals['improved']} ({len(picked['improved'])} shown)" in printed
    assert f"unchanged {totals['unchanged']} (3 shown) of 34 paired expressions" in printed
    assert picked["improved"], "the loop should fix some one-shot mistakes on generated scenes"
    for category, rows in picked.items():
        assert len(rows) <= 3
        png = tmp_path / "cases" / f"{category}.png"
        assert png.exists() == bool(rows)
        if rows:
            assert png.read_bytes().startswith(PNG)
    ious_b = {
        k: v
        for k, v in zip(
            [json.loads(line)["example_id"] for line in (b / "samples.jsonl").read_text().splitlines()],
            [json.loads(line)["iou"] for line in (b / "samples.jsonl").read_text().splitlines()],
            strict=True,
        )
    }
    assert all(np.isclose(r["iou_b"], ious_b[r["example_id"]]) for r in picked["improved"])
    # --tolerance (the name bench report uses) decides what is unchanged: at 1.0 everything is.
    assert main(["bench", "cases", str(a), str(b), "--out", str(tmp_path / "all"), "--tolerance", "1"]) == 0
    assert "improved 0 (0 shown), degraded 0 (0 shown), unchanged 34" in capsys.readouterr().out


def test_random_weight_runs_say_so(tmp_path: Path) -> None:
    import io

    from bench.report.markdown import render_markdown

    run(tmp_path / "r", None, synthetic(1))
    view = load_run(tmp_path / "r")
    assert "random weights" not in render_markdown([view], "t")
    view.summary.label.weights = "random"
    buf = io.StringIO()
    print_table([view], file=buf)
    assert "random weights" in buf.getvalue() and "random weights" in render_markdown([view], "t")


def test_figures_show_every_run_and_label_empty_buckets(two_runs: tuple[Path, Path]) -> None:
    from bench.report.figures import buckets_figure, iou_hist_figure
    from bench.report.tables import breakdown_tables

    base = load_run(two_runs[1])
    runs = [RunView(f"run{i}", base.run_dir, base.summary, base.ious) for i in range(11)]
    legend = iou_hist_figure(runs).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"run{i}" for i in range(11)]  # none dropped
    empty = [b for b, v in base.summary.metrics.breakdowns["size"].items() if v.n == 0]
    assert empty, "generated scenes have no small objects"
    texts = [t.get_text() for t in buckets_figure(runs[:2]).axes[0].texts]
    assert texts.count("n=0") == 2 * len(empty)
    [(title, (_, rows))] = breakdown_tables(runs[:1])
    assert title.startswith("By object size") and "— (n=0)" in rows[0]
