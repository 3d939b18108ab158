"""Segmentation metrics: IoU, mIoU, cIoU, Pr@t, bootstrap confidence intervals, size buckets.

Conventions (the usual referring-segmentation ones, written down once):

- ``iou(pred, gt)`` of two empty masks is **1.0**: predicting nothing where there is nothing
  is right. An empty prediction against a non-empty ground truth is 0.0. RefCOCO-M never has
  an empty ground truth, so this only matters for generated or hand-made data.
- mIoU is the mean of per-example IoUs; cIoU (cumulative IoU) is the sum of intersections
  over the sum of unions, which weights large objects more. cIoU of all-empty data is 1.0,
  like ``iou``.
- ``Pr@t`` is the fraction of examples with ``IoU >= t`` (as LAVT/CRIS count it).
- Size buckets use COCO's thresholds on the ground-truth area: small ``< 32**2``, medium
  ``< 96**2``, large otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Bootstrap resamples for every confidence interval a report prints (bench run, report, view).
DEFAULT_BOOTSTRAP = 2000

PR_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
SMALL_MAX = 32**2
MEDIUM_MAX = 96**2
BUCKETS: tuple[str, ...] = ("small", "medium", "large")

# Cap on the (draws x n) index matrix of one bootstrap chunk: about 32 MB of int64.
_BOOT_CHUNK_CELLS = 4_000_000


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """Pixel counts ``(|pred & gt|, |pred | gt|)`` of two ``(H, W)`` masks (nonzero = in).

    Raises:
        ValueError: the masks differ in shape.
    """
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    inter = int(np.count_nonzero(p & g))
    union = int(np.count_nonzero(p | g))
    return inter, union


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union; 1.0 when both masks are empty (see module notes)."""
    inter, union = intersection_union(pred, gt)
    return 1.0 if union == 0 else inter / union


def size_bucket(area: float) -> str:
    """COCO size bucket of a ground-truth area in pixels: ``small``, ``medium`` or ``large``."""
    if area < SMALL_MAX:
        return "small"
    if area < MEDIUM_MAX:
        return "medium"
    return "large"


def _chunks(b: int, n: int) -> list[int]:
    per = max(1, _BOOT_CHUNK_CELLS // max(n, 1))
    return [min(per, b - start) for start in range(0, b, per)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, B: int = DEFAULT_BOOTSTRAP, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Percentile bootstrap of the mean: ``(mean, lo, hi)`` at level ``1 - alpha``.

    ``B`` resamples of size ``n`` with replacement, drawn in vectorised chunks (memory stays
    bounded for large ``n``); the same ``seed`` gives the same interval.

    Raises:
        ValueError: no values, ``B < 1`` or ``alpha`` outside ``(0, 1)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    _check_boot(v.size, B, alpha)
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [v[rng.integers(0, v.size, size=(k, v.size))].mean(axis=1) for k in _chunks(B, v.size)]
    )
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


def bootstrap_ratio_ci(
    numerators: Sequence[float] | np.ndarray,
    denominators: Sequence[float] | np.ndarray,
    B: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Paired percentile bootstrap of ``sum(num) / sum(den)`` (e.g. cIoU): ``(ratio, lo, hi)``.

    Resamples examples, keeping each numerator with its denominator. A resample whose
    denominators sum to 0 counts as ratio 1.0 (the all-empty convention).
    """
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if num.shape != den.shape:
        raise ValueError(f"{num.size} numerators but {den.size} denominators")
    _check_boot(num.size, B, alpha)
    rng = np.random.default_rng(seed)
    parts = []
    for k in _chunks(B, num.size):
        idx = rng.integers(0, num.size, size=(k, num.size))
        n_sum, d_sum = num[idx].sum(axis=1), den[idx].sum(axis=1)
        parts.append(np.divide(n_sum, d_sum, out=np.ones_like(n_sum), where=d_sum > 0))
    ratios = np.concatenate(parts)
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return _ratio(float(num.sum()), float(den.sum())), float(lo), float(hi)


def _check_boot(n: int, B: int, alpha: float) -> None:
    if n == 0:
        raise ValueError("bootstrap needs at least one value")
    if B < 1:
        raise ValueError(f"bootstrap needs B >= 1 resamples, got {B}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else num / den


def summarize(
    ious: Sequence[float] | np.ndarray,
    inters: Sequence[int] | np.ndarray,
    unions: Sequence[int] | np.ndarray,
    gt_areas: Sequence[float] | np.ndarray | None = None,
    *,
    B: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """All headline numbers of one run, as a JSON-able dict.

    Args:
        ious: per-example IoU.
        inters: per-example intersection pixel counts (same order).
        unions: per-example union pixel counts.
        gt_areas: per-example ground-truth areas; adds per-size-bucket mIoU when given.
        B: bootstrap resamples for the confidence intervals (0 = no intervals).
        seed: bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        ``{"n", "miou", "ciou", "pr@0.5", ..., "pr@0.9", "miou_ci": [lo, hi],
        "ciou_ci": [lo, hi], "buckets": {"small": {"n", "miou"}, ...}}``; metrics of an
        empty run are ``None``, and ``buckets`` is absent without ``gt_areas``.
    """
    iou_arr = np.asarray(ious, dtype=np.float64).ravel()
    inter_arr = np.asarray(inters, dtype=np.float64).ravel()
    union_arr = np.asarray(unions, dtype=np.float64).ravel()
    n = iou_arr.size
    if inter_arr.size != n or union_arr.size != n:
        raise ValueError(f"{n} IoUs, {inter_arr.size} intersections and {union_arr.size} unions")
    out: dict[str, Any] = {"n": n}
    if n == 0:
        out.update({"miou": None, "ciou": None, "miou_ci": None, "ciou_ci": None})
        out.update({_pr_key(t): None for t in PR_THRESHOLDS})
    else:
        out["miou"] = float(iou_arr.mean())
        out["ciou"] = _ratio(float(inter_arr.sum()), float(union_arr.sum()))
        for t in PR_THRESHOLDS:
            out[_pr_key(t)] = float(np.mean(iou_arr >= t))
        if B > 0:
            _, lo, hi = bootstrap_ci(iou_arr, B=B, seed=seed, alpha=alpha)
            out["miou_ci"] = [lo, hi]
            _, lo, hi = bootstrap_ratio_ci(inter_arr, union_arr, B=B, seed=seed, alpha=alpha)
            out["ciou_ci"] = [lo, hi]
        else:
            out["miou_ci"] = out["ciou_ci"] = None
    if gt_areas is not None:
        out["buckets"] = bucket_miou(iou_arr, gt_areas)
    return out


def bucket_miou(
    ious: Sequence[float] | np.ndarray, gt_areas: Sequence[float] | np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per size bucket: ``{"small": {"n": int, "miou": float | None}, ...}`` (all three keys)."""
    iou_arr = np.asarray(ious, dtype=np.float64).ravel()
    areas = np.asarray(gt_areas, dtype=np.float64).ravel()
    if areas.size != iou_arr.size:
        raise ValueError(f"{iou_arr.size} IoUs but {areas.size} ground-truth areas")
    labels = np.array([size_bucket(a) for a in areas], dtype=object)
    result: dict[str, dict[str, Any]] = {}
    for bucket in BUCKETS:
        sel = iou_arr[labels == bucket] if labels.size else iou_arr[:0]
        result[bucket] = {"n": int(sel.size), "miou": float(sel.mean()) if sel.size else None}
    return result


def _pr_key(t: float) -> str:
    return f"pr@{t:.1f}"
