"""RefCOCO / RefCOCO+ / RefCOCOg in the lmms-lab parquet layout: a miniature RefCOCOg runs
from the CLI with one result line per (object, sentence), each line's IoU equal to its mask's
against the polygon rasterised by pycocotools, and mIoU, cIoU and Pr@t equal to a
recomputation from the lines; the family's names reach their hub sets through the real
``datasets`` loader (its network call faked); broken rows are reported, not lost."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers_formats import check_lines, polygons_mask, run_cli, summary_metrics
from PIL import Image as PILImage

from bench.data import DataRequest, ExampleSet, open_dataset, resolve
from bench.data.format_fixtures import lmms_rows, scenes, write_lmms_refcoco
from bench.data_errors import DatasetError


def _truths(path: Path) -> dict[str, np.ndarray]:
    """Each expected example's target, straight from the parquet file and pycocotools."""
    out = {}
    for row in pq.read_table(path).to_pylist():
        w, h = PILImage.open(io.BytesIO(row["image"]["bytes"])).size
        image_id = str(int(Path(row["file_name"]).stem.split("_")[-1]))
        for k, _sentence in enumerate(row["answer"]):
            out[f"{image_id}:{row['question_id']}:{k}"] = polygons_mask([row["segmentation"]], h, w)
    return out


@pytest.mark.slow
def test_a_miniature_refcocog_parquet_runs_and_its_metrics_recompute(tmp_path: Path) -> None:
    path = write_lmms_refcoco(tmp_path / "RefCOCOg" / "val-00000-of-00001.parquet", lmms_rows(scenes(3)))
    out = tmp_path / "run"
    assert run_cli(path, out) == 0
    truths = _truths(path)
    assert len(truths) == sum(len(r["answer"]) for r in pq.read_table(path).to_pylist()) > 12
    ious, inter, union, found = check_lines(out, truths)
    sentences = {row["question_id"]: row["answer"] for row in pq.read_table(path).to_pylist()}
    for line in found:  # each line is its own sentence
        _, qid, k = line["example_id"].split(":")
        assert line["sentence"] == sentences[qid][int(k)]
    m = summary_metrics(out)
    assert m["protocol"] == "mask-iou" and m["headline"] == "miou"
    assert m["miou"] == pytest.approx(np.mean(ious)) and m["ciou"] == pytest.approx(inter / union)
    for t in (0.5, 0.7, 0.9):
        assert m[f"pr@{t}"] == pytest.approx(np.mean([iou >= t for iou in ious]))
    lo, hi = m["miou_ci"]
    assert lo <= m["miou"] <= hi and 0.5 < m["miou"] < 1.0  # the offline tools find these objects
    dataset = json.loads((out / "config.json").read_text())["results"]["dataset"]
    assert (dataset["adapter"], dataset["protocol"], dataset["split"]) == ("refcoco", "mask-iou", "val")
    assert dataset["files"] == [
        {
            "path": str(path),
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    ]
    report = (out / "report.md").read_text()
    assert "mIoU" in report and "cIoU" in report and "Pr@0.9" in report


def test_family_names_reach_their_hub_sets_and_their_splits(tmp_path: Path, monkeypatch: Any) -> None:
    path = write_lmms_refcoco(tmp_path / "copy.parquet", lmms_rows(scenes(1)))
    real = datasets.load_dataset
    asked: list[tuple[str, str | None]] = []

    def hub(name: str, split: str | None = None, cache_dir: str | None = None, **kw: Any) -> Any:
        if name == "parquet":
            return real(name, split=split, cache_dir=cache_dir, **kw)
        asked.append((name, split))  # the network edge: serve the miniature instead
        return real("parquet", data_files=[str(path)], split="train", cache_dir=cache_dir)

    monkeypatch.setattr(datasets, "load_dataset", hub)
    for name, hub_name, split in (
        ("refcoco", "lmms-lab/RefCOCO", "testB"),
        ("refcoco+", "lmms-lab/RefCOCOplus", "testA"),
        ("refcocog", "lmms-lab/RefCOCOg", "test"),
        ("lmms-lab/RefCOCOg", "lmms-lab/RefCOCOg", None),
    ):
        examples = ExampleSet.of(open_dataset(name, DataRequest(split=split, cache_dir=str(tmp_path / "c"))))
        record = examples.record()
        assert asked[-1] == (hub_name, split or "val") and record.source == hub_name
        assert record.adapter == resolve(name)[0].name and record.split == (split or "val") and examples
    with pytest.raises(DatasetError, match=r"refcocog has no split 'testA'; its splits are val, test"):
        open_dataset("refcocog", DataRequest(split="testA"))
    with pytest.raises(
        DatasetError, match=r"refcoco\+ has no split 'test'; its splits are val, testA, testB"
    ):
        open_dataset("refcoco+", DataRequest(split="test"))
    forced = open_dataset(f"refcocog:{path}", DataRequest()).record()  # a local copy named as RefCOCOg
    assert (forced.adapter, forced.source) == ("refcocog", str(path))


def test_broken_rows_are_reported_and_images_grouped_in_file_order(tmp_path: Path) -> None:
    rows = lmms_rows(scenes(2))
    first = [r for r in rows if r["file_name"] == rows[0]["file_name"]]
    second = [r for r in rows if r["file_name"] != rows[0]["file_name"]]
    bad_polygon = {**first[0], "question_id": "bad", "segmentation": [1.0, 2.0, 3.0, 4.0]}
    no_sentences = {**first[1], "question_id": "mute", "answer": []}
    again = {**first[0], "question_id": "again"}
    # The first image again after the second: a new group (consecutive rows form one).
    path = write_lmms_refcoco(tmp_path / "rows.parquet", [*first, bad_polygon, no_sentences, *second, again])
    source = open_dataset(str(path), DataRequest())
    groups = list(source.groups())
    assert [g[0].image_id for g in groups] == ["1", "2", "1"] and source.total_images == 3
    assert [ex.sample_id for ex in groups[2]] == ["again", "again"]
    examples = [ex for g in groups for ex in g]
    broken = [ex for ex in examples if ex.sample_id == "bad"]
    assert len(broken) == 2 and all("a polygon has 4 coordinates" in (ex.error or "") for ex in broken)
    assert source.dropped == {"objects_without_sentences": 1}
    assert not any(ex.error for ex in examples if ex.sample_id != "bad")
    subset = open_dataset(str(path), DataRequest(n=1, seed_subset=3))  # a seeded subset of image groups
    assert len(list(subset.groups())) == 1
