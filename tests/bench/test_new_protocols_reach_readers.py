"""The protocols of the new data sets reach every reader: the suite's table, its pairs and its
figures on gRefCOCO's gIoU / N-acc / T-acc, ``bench report A B`` paired on the headline, and
the viewer's example page drawing a polygon target at the image's size."""

from __future__ import annotations

import io
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from starlette.testclient import TestClient

from bench.cli import main
from bench.data.format_fixtures import scenes, write_grefcoco, write_reasonseg
from bench.viewer import ViewerOptions, create_app


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.mark.slow
def test_the_suite_reports_grefcoco_on_its_own_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_grefcoco(tmp_path / "grefcoco", scenes(2))
    out = tmp_path / "suite"
    args = ["bench", "suite", "--dataset", str(folder), "--toolset", "offline", "--out", str(out), "--quiet",
            "--no-cache", "--bootstrap", "100", "--experiments", "main", "--max-iters", "1,2"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("run "))
    assert (
        all(label in header for label in ("gIoU", "cIoU", "N-acc", "T-acc", "Pr@0.7"))
        and "mIoU" not in header
    )
    assert re.search(r"loop_iter1 - oneshot: gIoU [+-]\d\.\d{3} \[", printed)  # paired on the headline
    report = (out / "report.md").read_text()
    assert "By target (none, one or several objects)" in report and "N-acc" in report
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"miou_vs_iter.png", "size_buckets.png", "iou_hist.png"} <= figures  # drawn on gIoU
    summary = json.loads((out / "oneshot" / "summary.json").read_text())["metrics"]
    pairs = [
        "bench",
        "report",
        str(out / "oneshot"),
        str(out / "loop_iter2"),
        "--out",
        str(tmp_path / "pairs"),
    ]
    assert main(pairs) == 0
    compared = capsys.readouterr().out
    assert f"{summary['giou']:.3f}" in compared and re.search(r"loop_iter2 - oneshot: gIoU ", compared)


@pytest.mark.slow
def test_the_viewer_draws_a_polygon_target_and_shows_the_breakdown(tmp_path: Path) -> None:
    write_reasonseg(tmp_path / "ReasonSeg", scenes(2))
    out = tmp_path / "run"
    args = ["bench", "run", "--dataset", str(tmp_path / "ReasonSeg"), "--toolset", "offline", "--out",
            str(out), "--quiet", "--no-cache", "--bootstrap", "50"]  # fmt: skip
    assert main(args) == 0
    client = TestClient(create_app(ViewerOptions(run=out, preload=False)), base_url="http://127.0.0.1")
    text = _text(client.get("/").text)
    m = json.loads((out / "summary.json").read_text())["metrics"]
    assert "scored by protocol reasonseg" in text and f"gIoU {m['giou']:.3f}" in text
    assert "short" in text and "long" in text
    example = json.loads((out / "samples.jsonl").read_text().splitlines()[0])["example_id"]
    page = client.get("/example", params={"id": example})
    assert page.status_code == 200 and "cannot" not in _text(page.text).lower()
    gt = client.get("/img/a/gt.png", params={"id": example})
    assert gt.status_code == 200 and gt.headers["content-type"] == "image/png"
    alpha = np.asarray(PILImage.open(io.BytesIO(gt.content)))[..., 3]
    assert alpha.shape == (96, 128) and (alpha > 0).sum() > 50  # the polygon, drawn at the image's size
