"""Metrics against hand-computed values: the primitives, and the mask-IoU protocol's summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bench.data.protocols import MASK_IOU
from bench.metrics import (
    bootstrap_ci,
    bootstrap_ratio_ci,
    cluster_ratio_ci,
    intersection_union,
    iou,
    size_bucket,
)
from bench.records import SampleRecord


def summarize(
    ious: Sequence[float],
    inters: Sequence[int],
    unions: Sequence[int],
    gt_areas: Sequence[int] | None = None,
    *,
    B: int = 2000,
) -> dict[str, Any]:
    """The protocol's metrics over records with these numbers (one image each), as summary.json holds them."""
    records = [
        SampleRecord(
            index=i,
            example_id=f"e{i}",
            image_id=f"img{i}",
            sentence="x",
            failed=False,
            iou=v,
            inter=inters[i],
            union=unions[i],
            bucket=size_bucket(gt_areas[i]) if gt_areas is not None else None,
        )
        for i, v in enumerate(ious)
    ]
    dumped: dict[str, Any] = MASK_IOU.summarize(records, bootstrap=B).model_dump(mode="json")
    return dumped


def _masks() -> list[tuple[np.ndarray, np.ndarray]]:
    # A: gt = 2 pixels, pred = 2 pixels, 1 shared -> I=1, U=3, IoU=1/3.
    gt_a = np.zeros((4, 4), bool)
    gt_a[0, 0:2] = True
    pred_a = np.zeros((4, 4), bool)
    pred_a[0, 1:3] = True
    # B: gt = pred = 8 pixels -> I=8, U=8, IoU=1.
    gt_b = np.zeros((4, 4), bool)
    gt_b[2:4, :] = True
    return [(pred_a, gt_a), (gt_b.copy(), gt_b)]


def test_iou_and_intersection_union_by_hand() -> None:
    (pa, ga), (pb, gb) = _masks()
    assert intersection_union(pa, ga) == (1, 3)
    assert iou(pa, ga) == pytest.approx(1 / 3)
    assert intersection_union(pb, gb) == (8, 8)
    assert iou(pb, gb) == 1.0


def test_empty_conventions() -> None:
    empty = np.zeros((3, 3), bool)
    gt = np.zeros((3, 3), bool)
    gt[1, 1] = True
    assert iou(empty, gt) == 0.0  # nothing predicted, something there
    assert iou(gt, empty) == 0.0  # something predicted, nothing there
    assert iou(empty, empty) == 1.0  # documented: nothing where there is nothing is right
    assert intersection_union(empty, empty) == (0, 0)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        intersection_union(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def test_ciou_differs_from_miou() -> None:
    pairs = _masks()
    ious = [iou(p, g) for p, g in pairs]
    iu = [intersection_union(p, g) for p, g in pairs]
    s = summarize(ious, [i for i, _ in iu], [u for _, u in iu], B=200)
    assert s["n"] == 2
    assert s["miou"] == pytest.approx((1 / 3 + 1) / 2)  # 0.667
    assert s["ciou"] == pytest.approx(9 / 11)  # (1 + 8) / (3 + 8) = 0.818
    assert s["pr@0.5"] == 0.5 and s["pr@0.9"] == 0.5
    json.dumps(s)  # JSON-able for summary.json


def test_precision_at_thresholds_counts_ge() -> None:
    ious = [0.5, 0.6, 0.69, 0.8, 0.95, 0.1]
    s = summarize(ious, [0] * 6, [1] * 6, B=0)
    assert s["pr@0.5"] == pytest.approx(5 / 6)  # 0.5 counts: IoU >= t
    assert s["pr@0.6"] == pytest.approx(4 / 6)
    assert s["pr@0.7"] == pytest.approx(2 / 6)
    assert s["pr@0.8"] == pytest.approx(2 / 6)
    assert s["pr@0.9"] == pytest.approx(1 / 6)
    assert s["miou_ci"] is None and s["ciou"] == 0.0


def test_empty_run_and_all_empty_unions() -> None:
    s = summarize([], [], [], gt_areas=[])
    assert s["n"] == 0 and s["miou"] is None and s["pr@0.5"] is None and s["miou_ci"] is None
    assert s["breakdowns"]["size"]["small"] == {"n": 0, "miou": None}
    assert summarize([1.0], [0], [0], B=10)["ciou"] == 1.0


def test_bootstrap_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(1)
    small = rng.random(30)
    large = rng.random(3000)
    m1, lo1, hi1 = bootstrap_ci(small, B=1000, seed=0)
    m2, lo2, hi2 = bootstrap_ci(large, B=1000, seed=0)
    assert m1 == pytest.approx(small.mean()) and lo1 < m1 < hi1
    assert lo2 < m2 < hi2
    assert (hi2 - lo2) < (hi1 - lo1) / 4  # ~1/sqrt(100) as wide
    assert bootstrap_ci(small, B=1000, seed=0) == (m1, lo1, hi1)  # deterministic
    assert bootstrap_ci([0.7], B=50) == (0.7, 0.7, 0.7)
    # 95% percentile interval of a uniform(0,1) mean with n=3000: about +-0.0103.
    assert (hi2 - lo2) == pytest.approx(2 * 1.96 * np.sqrt(1 / 12 / 3000), rel=0.15)


def test_bootstrap_ratio_ci_brackets_ciou() -> None:
    rng = np.random.default_rng(2)
    unions = rng.integers(10, 1000, size=200)
    inters = (unions * rng.random(200)).astype(int)
    r, lo, hi = bootstrap_ratio_ci(inters, unions, B=500)
    assert r == pytest.approx(inters.sum() / unions.sum())
    assert lo < r < hi


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], alpha=1.5)


def test_size_buckets_coco_thresholds() -> None:
    assert size_bucket(0) == "small"
    assert size_bucket(32**2 - 1) == "small"
    assert size_bucket(32**2) == "medium"
    assert size_bucket(96**2 - 1) == "medium"
    assert size_bucket(96**2) == "large"
    b = summarize([0.2, 0.4, 0.9, 1.0], [0] * 4, [1] * 4, [100, 500, 5000, 20000], B=0)["breakdowns"]["size"]
    assert b["small"] == {"n": 2, "miou": pytest.approx(0.3)}
    assert b["medium"] == {"n": 1, "miou": pytest.approx(0.9)}
    assert b["large"] == {"n": 1, "miou": pytest.approx(1.0)}
    s = summarize([0.2, 0.4], [1, 2], [5, 5], gt_areas=[10, 20000], B=0)
    assert s["breakdowns"]["size"]["small"]["miou"] == pytest.approx(0.2)
    assert s["breakdowns"]["size"]["large"]["miou"] == pytest.approx(0.4)
    assert s["breakdowns"]["size"]["medium"]["n"] == 0


def test_cluster_ratio_ci_resamples_images_and_takes_the_ratio_of_sums() -> None:
    rng = np.random.default_rng(4)
    unions = rng.integers(10, 1000, size=300).astype(float)
    inters = unions * rng.random(300)
    images = [f"img{i // 3}" for i in range(300)]
    lo, hi = cluster_ratio_ci(inters, unions, images, B=800)
    assert lo < inters.sum() / unions.sum() < hi
    # A mean is the case denominator 1; one example per image: the plain bootstrap's interval.
    values = rng.random(200)
    single = cluster_ratio_ci(values, np.ones(200), [str(i) for i in range(200)], B=4000, seed=5)
    _, plo, phi = bootstrap_ci(values, B=4000, seed=5)
    assert single == pytest.approx((plo, phi), abs=0.01)
    assert cluster_ratio_ci([0.0, 0.0], [0.0, 0.0], ["a", "b"], B=20, empty=1.0) == (1.0, 1.0)
    with pytest.raises(ValueError):
        cluster_ratio_ci([1.0], [1.0, 2.0], ["a"])
