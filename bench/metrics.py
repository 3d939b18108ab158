"""Segmentation metric primitives: IoU, bootstrap confidence intervals, size buckets.

The metrics a run reports (mIoU, cIoU, Pr@t, ...) are defined by its data set's protocol
(:mod:`bench.data.protocol`, :mod:`bench.data.protocols`) on top of these. Conventions (the
usual referring-segmentation ones, written down once):

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

import numpy as np

# Bootstrap resamples for every confidence interval a report prints (bench run, report, view).
DEFAULT_BOOTSTRAP = 2000
# Below this many images a bootstrap over images has too few clusters to resample: its
# interval is rough (too narrow, and jumpy from run to run). Every place that shows one says so.
FEW_IMAGES = 10


def rough_interval_note(n_images: int | None) -> str:
    """``"only 3 images: a rough interval"`` below :data:`FEW_IMAGES` images, else ``""``."""
    if n_images is None or n_images >= FEW_IMAGES:
        return ""
    return f"only {n_images} image{'s' if n_images != 1 else ''}: a rough interval"


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
    per = _chunk(b, n)
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


def cluster_ratio_ci(
    numerators: Sequence[float] | np.ndarray,
    denominators: Sequence[float] | np.ndarray,
    clusters: Sequence[str],
    *,
    B: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
    empty: float = 1.0,
) -> tuple[float, float]:
    """Percentile interval of ``sum(num) / sum(den)`` resampling whole clusters (images).

    A mean is the case ``den = 1``; cIoU is ``num = intersections, den = unions``. Each of the
    ``B`` resamples draws as many clusters as there are, with replacement, and takes the ratio
    of the drawn clusters' sums (``empty`` when their denominators sum to 0). Draws are made
    in bounded chunks; the same ``seed`` gives the same interval.

    Raises:
        ValueError: no values, lengths that differ, ``B < 1`` or ``alpha`` outside ``(0, 1)``.
    """
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if num.shape != den.shape or num.size != len(clusters):
        raise ValueError(f"{num.size} numerators, {den.size} denominators and {len(clusters)} cluster labels")
    _check_boot(num.size, B, alpha)
    labels, index = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    num_sums = np.bincount(index, weights=num, minlength=len(labels))
    den_sums = np.bincount(index, weights=den, minlength=len(labels))
    rng = np.random.default_rng(seed)
    ratios = np.empty(B)
    for start, k in zip(range(0, B, _chunk(B, len(labels))), _chunks(B, len(labels)), strict=True):
        draws = rng.integers(0, len(labels), size=(k, len(labels)))
        n_sum, d_sum = num_sums[draws].sum(axis=1), den_sums[draws].sum(axis=1)
        ratios[start : start + k] = np.divide(n_sum, d_sum, out=np.full_like(n_sum, empty), where=d_sum > 0)
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _chunk(b: int, n: int) -> int:
    return max(1, _BOOT_CHUNK_CELLS // max(n, 1))
