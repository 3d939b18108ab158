"""Independent recomputations for the data set format tests: masks straight from the files
(pycocotools, PIL, numpy), metrics straight from ``samples.jsonl``; nothing here calls the
adapters or the protocols under test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from bench.cli import main


def run_cli(dataset: Path | str, out: Path, *extra: str) -> int:
    return main(
        ["bench", "run", "--dataset", str(dataset), "--toolset", "offline", "--out", str(out), "--quiet",
         "--no-cache", "--bootstrap", "200", *extra]
    )  # fmt: skip


def lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def summary_metrics(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text())["metrics"])


def polygons_mask(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    """COCO's rasterisation of polygons: frPyObjects -> merge -> decode."""
    return np.asarray(mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))), dtype=bool)


def rle_mask(rle: dict[str, Any]) -> np.ndarray:
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    else:
        rle = {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return np.asarray(mask_utils.decode(rle), dtype=bool)


def counts(pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int]:
    keep = ~ignore if ignore is not None else np.ones_like(truth)
    return int((pred & truth & keep).sum()), int(((pred | truth) & keep).sum())


def check_lines(run_dir: Path, truths: dict[str, Any]) -> tuple[list[float], int, int, list[dict[str, Any]]]:
    """Every line's stored IoU, pixel counts and mask against ``truths`` (``example_id ->
    mask`` or ``(mask, ignore)``); returns the IoUs, the summed intersections and unions, and
    the lines."""
    found = lines(run_dir)
    assert sorted(line["example_id"] for line in found) == sorted(truths)  # one line per example
    ious, inter_sum, union_sum = [], 0, 0
    for line in found:
        truth = truths[line["example_id"]]
        mask, ignore = truth if isinstance(truth, tuple) else (truth, None)
        assert not line["failed"], line["error"]
        pred = rle_mask(line["mask"])
        inter, union = counts(pred, mask, ignore)
        iou = 1.0 if union == 0 else inter / union
        assert (line["inter"], line["union"]) == (inter, union)
        assert abs(line["iou"] - iou) < 1e-9 and line["pred_area"] == int(
            (pred & ~ignore).sum() if ignore is not None else pred.sum()
        )
        ious.append(iou)
        inter_sum += inter
        union_sum += union
    return ious, inter_sum, union_sum, found
