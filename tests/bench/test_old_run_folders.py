"""Run folders written before run records were typed and versioned still open: in `bench report`,
`bench cases`, the paired comparison and `refseg view` (tests/fixtures/: folders written by the
code of main at 0572fc4, see its README)."""

from __future__ import annotations

import json
import os
import re
import shutil
from html import unescape
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench.cli import main
from bench.options import BenchOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions
from bench.records import SampleRecord, Summary
from bench.runner import run_bench_sync
from bench.samples import read_samples
from bench.viewer import ViewerOptions, create_app
from tools.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def old_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the old one-shot and loop runs, ``summary.json`` newer than the lines (as the
    bench left it: a checkout's file times are arbitrary)."""
    out = []
    for name in ("v0_offline_oneshot", "v0_offline_loop"):
        folder = tmp_path / name
        shutil.copytree(FIXTURES / "runs" / name, folder)
        t = (folder / "samples.jsonl").stat().st_mtime_ns
        os.utime(folder / "summary.json", ns=(t + 10**9, t + 10**9))
        out.append(folder)
    return out[0], out[1]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_old_lines_read_with_their_newer_fields_at_defaults(old_runs: tuple[Path, Path]) -> None:
    records, skipped = read_samples(old_runs[1])
    assert skipped == 0 and len(records) == 20
    rec = records["scene-0:1:0"]
    assert isinstance(rec, SampleRecord) and rec.schema_version == 0
    assert rec.pred_area is None and rec.predicted_area == rec.inter == rec.union  # IoU 1: derived
    assert rec.tags == {} and rec.scores == {} and rec.rank_steps == []  # cut off unread
    with_steps, _ = read_samples(old_runs[1], rank_steps=True)
    assert with_steps["scene-0:1:0"].rank_steps[0].candidates[0].mask is not None


@pytest.mark.slow
def test_bench_report_and_the_paired_comparison_on_old_runs(
    old_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    oneshot, loop = old_runs
    old = json.loads((loop / "summary.json").read_bytes())
    assert "schema_version" not in old and "buckets" in old["metrics"]  # really the old layout
    before = (loop / "summary.json").read_bytes()
    assert main(["bench", "report", str(oneshot), str(loop), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert (loop / "summary.json").read_bytes() == before  # read as it is, not rewritten
    paired = re.search(r"v0_offline_loop - v0_offline_oneshot: mIoU ([+-]\d\.\d{3}) \[", printed)
    lines = {n: read_samples(d)[0] for n, d in (("a", oneshot), ("b", loop))}
    diff = sum(lines["b"][e].iou - lines["a"][e].iou for e in lines["a"]) / len(lines["a"])
    assert paired and float(paired.group(1)) == pytest.approx(diff, abs=5e-4)
    report = (tmp_path / "rep" / "report.md").read_text()
    assert (
        f"| v0_offline_loop | loop(rules) x3 | clean | 1 | 20 | 0 | {old['metrics']['miou']:.3f} |" in report
    )
    small = old["metrics"]["buckets"]["small"]
    assert "## By object size" in report and f"{small['miou']:.3f} (n={small['n']})" in report
    # Recomputed from the old lines (a new bootstrap): the same numbers, in today's layout.
    assert main(["bench", "report", str(loop), "--bootstrap", "100"]) == 0
    new = json.loads((loop / "summary.json").read_text())
    assert new["schema_version"] == 1 and new["metrics"]["protocol"] == "mask-iou"
    assert new["metrics"]["miou"] == pytest.approx(old["metrics"]["miou"])
    assert new["metrics"]["breakdowns"]["size"] == old["metrics"]["buckets"]
    assert new["counts"] == old["counts"] and new["stop_reasons"] == old["stop_reasons"]


@pytest.mark.slow
def test_bench_cases_on_old_runs(old_runs: tuple[Path, Path], tmp_path: Path) -> None:
    oneshot, loop = old_runs
    assert main(["bench", "cases", str(oneshot), str(loop), "--out", str(tmp_path / "cases")]) == 0
    cases = json.loads((tmp_path / "cases" / "cases.json").read_text())
    assert cases["totals"]["paired"] == 20
    drawn = [c for c in ("improved", "degraded", "unchanged") if cases[c]]
    assert drawn and all((tmp_path / "cases" / f"{c}.png").stat().st_size > 0 for c in drawn)


@pytest.mark.slow
def test_the_viewer_shows_old_runs_and_an_old_segment_folder(
    old_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    oneshot, loop = old_runs
    old = json.loads((loop / "summary.json").read_text())
    client = TestClient(
        create_app(ViewerOptions(run=loop, run_b=oneshot, preload=False)), base_url="http://127.0.0.1"
    )
    page = _text(client.get("/").text)
    m = old["metrics"]
    assert f"mIoU {m['miou']:.3f} 95% CI [{m['miou_ci'][0]:.3f}, {m['miou_ci'][1]:.3f}]" in page
    assert "scored by protocol mask-iou" in page and "summary.json" in page and "by object size" in page
    example = client.get("/example", params={"id": "scene-0:1:3"})
    assert example.status_code == 200 and "jade star" in _text(example.text)
    for layer in ("image", "gt", "pred"):  # the generated scene is made again; masks from the lines
        assert client.get("/img/a/" + layer + ".png", params={"id": "scene-0:1:3"}).status_code == 200
    segment = tmp_path / "segment"
    shutil.copytree(FIXTURES / "segment", segment)
    viewer = TestClient(create_app(ViewerOptions(run=segment, preload=False)), base_url="http://127.0.0.1")
    assert "the red star" in _text(viewer.get("/").text)
    result = viewer.get("/result/0")
    assert result.status_code == 200 and "guard" in _text(result.text)


def test_resuming_an_old_run_is_refused_in_one_line(old_runs: tuple[Path, Path], tmp_path: Path) -> None:
    options = BenchOptions(
        out=old_runs[1],
        episode=EpisodeOptions(models=ModelOptions(toolset="offline")),
        data=DataSpec("synthetic", n=1),
        run=RunOptions(bootstrap=0, quiet=True),
    )
    with pytest.raises(ConfigError, match="written by an older refseg-loop") as info:
        run_bench_sync(options)
    assert "refseg bench report" in str(info.value) and "\n" not in str(info.value)
    assert Summary.model_validate_json((old_runs[1] / "summary.json").read_text()).counts.examples == 20
