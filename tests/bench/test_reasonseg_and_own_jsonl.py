"""ReasonSeg from its folder layout (ignore regions left out of scoring, gIoU and cIoU by short
query and long sentence) and a JSONL of your own data with all four target forms (RLE,
polygon, PNG, none): one example per query or line, the masks, and every metric against a
recomputation from the files and the result lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_formats import check_lines, polygons_mask, rle_mask, run_cli, summary_metrics
from PIL import Image as PILImage

from bench.data import DataRequest, ExampleSet, open_dataset
from bench.data.format_fixtures import scenes, write_own_jsonl


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[int]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _write_reasonseg(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``val/`` with rectangles, whose drawing is known exactly (corners included, the smaller
    shape wins where two overlap); returns each example's (target, ignore)."""
    split = root / "val"
    split.mkdir(parents=True)
    truths = {}
    for i, scene in enumerate(scenes(3)):
        h, w = scene.image.shape[:2]
        PILImage.fromarray(scene.image).save(split / f"img{i}.jpg", quality=95)
        bx, by, bw, bh = scene.objects[0].bbox_xywh
        x0, y0, x1, y1 = bx, by, bx + bw - 1, by + bh - 1
        shapes = [
            {"label": "target", "points": _rect(x0, y0, x1, y1)},
            {"label": "ignore", "points": _rect(x0, y0, x0 + 3, y0 + 3)},  # a hole inside the target
            {"label": "flag", "points": _rect(0, 0, 5, 5)},  # deprecated: skipped
        ]
        target = np.zeros((h, w), bool)
        target[y0 : y1 + 1, x0 : x1 + 1] = True
        ignore = np.zeros((h, w), bool)
        ignore[y0 : y0 + 4, x0 : x0 + 4] = True
        target &= ~ignore
        texts = [scene.objects[0].expressions[0]] + ([scene.objects[0].expressions[1]] if i != 1 else [])
        long = i == 1
        if long:
            texts = [f"Which shape would a child call {scene.objects[0].expressions[0]}? Segment it."]
        (split / f"img{i}.json").write_text(
            json.dumps({"text": texts, "is_sentence": long, "shapes": shapes})
        )
        for k in range(len(texts)):
            truths[f"img{i}:0:{k}"] = (target, ignore)
    return truths


@pytest.mark.slow
def test_reasonseg_leaves_ignore_regions_out_and_splits_by_query_kind(tmp_path: Path) -> None:
    truths = _write_reasonseg(tmp_path / "ReasonSeg")
    examples = ExampleSet.of(open_dataset(str(tmp_path / "ReasonSeg"), DataRequest()))  # split val
    assert [ex.example_id for ex in examples] == list(truths)
    for ex in examples:
        image = ex.load_image()
        truth = ex.ground_truth((image.height, image.width))
        target, ignore = truths[ex.example_id]
        assert np.array_equal(truth.mask, target) and np.array_equal(truth.ignore, ignore)
    out = tmp_path / "run"
    assert run_cli(tmp_path / "ReasonSeg", out) == 0
    ious, inter, union, found = check_lines(out, truths)
    m = summary_metrics(out)
    assert (m["protocol"], m["headline"]) == ("reasonseg", "giou")
    assert m["giou"] == pytest.approx(np.mean(ious)) and m["ciou"] == pytest.approx(inter / union)
    by_query = m["breakdowns"]["query"]
    for kind in ("short", "long"):
        kept = [(line, iou) for line, iou in zip(found, ious, strict=True) if line["tags"]["query"] == kind]
        assert by_query[kind]["n"] == len(kept) > 0
        assert by_query[kind]["giou"] == pytest.approx(np.mean([iou for _, iou in kept]))
        assert by_query[kind]["ciou"] == pytest.approx(
            sum(line["inter"] for line, _ in kept) / sum(line["union"] for line, _ in kept)
        )
    first = open_dataset(str(tmp_path / "ReasonSeg"), DataRequest(per_image="first"))  # LISA's protocol
    assert [ex.example_id for g in first.groups() for ex in g] == ["img0:0:0", "img1:0:0", "img2:0:0"]


def _jsonl_truths(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = json.loads(raw)
        h, w = PILImage.open(path.parent / line["image"]).size[::-1]
        if "mask" in line:
            mask = rle_mask(line["mask"])
        elif "polygon" in line:
            mask = polygons_mask([line["polygon"]], h, w)
        elif "mask_png" in line:
            mask = np.asarray(PILImage.open(path.parent / line["mask_png"])) > 0
        else:
            mask = np.zeros((h, w), bool)
        out[f"{line['image']}:{number}:0"] = mask
    return out


@pytest.mark.slow
def test_own_jsonl_with_all_four_target_forms_runs_and_reports(tmp_path: Path) -> None:
    path = write_own_jsonl(tmp_path / "own", scenes(2))
    forms = [
        next(k for k in ("mask", "polygon", "mask_png", "none") if k in json.loads(r))
        for r in path.read_text().splitlines()
    ]
    assert set(forms) == {"mask", "polygon", "mask_png", "none"}
    out = tmp_path / "run"
    assert run_cli(path, out) == 0
    truths = _jsonl_truths(path)
    ious, inter, union, found = check_lines(out, truths)
    m = summary_metrics(out)
    none = [line for line in found if line["tags"]["target"] == "none"]
    assert m["protocol"] == "gres" and len(none) == 2
    assert m["giou"] == pytest.approx(np.mean(ious)) and m["ciou"] == pytest.approx(inter / union)
    assert m["n_acc"] == pytest.approx(np.mean([line["pred_area"] == 0 for line in none]))
    assert m["t_acc"] == pytest.approx(np.mean([line["pred_area"] > 0 for line in found if line not in none]))
    assert "gIoU" in (out / "report.md").read_text()


@pytest.mark.slow
def test_own_jsonl_reports_bad_lines_and_refuses_paths_outside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "own"
    path = write_own_jsonl(folder, scenes(1))
    good = path.read_text().splitlines()
    first = json.loads(good[0])
    bad = [
        "not json at all",
        json.dumps({"expression": "no image"}),
        json.dumps({**first, "expression": "two targets", "none": True}),
        json.dumps({"image": first["image"], "expression": "outside", "mask_png": "../../etc/passwd"}),
        json.dumps({"image": "../escape.png", "expression": "the red one", "none": True}),
    ]
    path.write_text("\n".join([*good, *bad]) + "\n")
    (tmp_path / "escape.png").write_bytes((folder / first["image"]).read_bytes())
    out = tmp_path / "run"
    assert run_cli(path, out) == 1  # failed examples: exit 1, the others recorded
    by_id = {
        line["sentence"]: line
        for line in (json.loads(r) for r in (out / "samples.jsonl").read_text().splitlines())
    }
    assert (
        "needs exactly one target of mask, polygon, mask_png, none (found mask, none)"
        in by_id["two targets"]["error"]
    )
    assert "outside the data set folder" in (by_id["outside"]["error"] or "")
    assert "outside the data set folder" in (by_id["the red one"]["error"] or "")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] == {"lines_without_image_and_expression": 2}
    assert summary["counts"]["failed"] == 3 and summary["counts"]["ok"] == len(good)
