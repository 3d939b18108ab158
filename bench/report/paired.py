"""Paired comparison of two runs over the same examples: what an ablation table needs.

The mIoU difference ``B - A`` over the examples both runs recorded, with a 95% confidence
interval from a **cluster** bootstrap that resamples *images*, not expressions: the
expressions of one image share its proposals and its difficulty, so they are not
independent, and resampling them one by one would give an interval that is too narrow.
Each resample draws as many images as there are, with replacement, and takes the mean
difference over all expressions of the drawn images (each expression weighs the same, as in
mIoU). Counts of improved / degraded / unchanged examples use a stated IoU tolerance: a
difference within ``±tolerance`` is unchanged. Failed examples count IoU 0, as in mIoU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.metrics import DEFAULT_BOOTSTRAP

DEFAULT_TOLERANCE = 0.01


def change_of(diff: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """``improved``, ``degraded`` or ``unchanged``: IoU B - IoU A against ``tolerance``.

    The one rule behind the paired counts, `bench cases` and the viewer's filter.
    """
    if diff > tolerance:
        return "improved"
    return "degraded" if diff < -tolerance else "unchanged"


def paired_comparison(
    a: Mapping[str, Mapping[str, Any]],
    b: Mapping[str, Mapping[str, Any]],
    *,
    B: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Compare run B with run A example by example.

    Args:
        a, b: records by example id (``samples.jsonl`` lines: ``iou`` and ``image_id``).
        B: bootstrap resamples of images (0: no interval).
        seed: bootstrap seed (the same seed gives the same interval).
        alpha: 1 - confidence level.
        tolerance: ``|IoU_B - IoU_A| <= tolerance`` counts as unchanged.

    Returns:
        ``n_expressions`` and ``n_images`` paired, ``only_a`` / ``only_b`` (examples one run
        lacks, left out), ``miou_a``, ``miou_b``, ``diff`` (B - A), ``ci`` ([lo, hi] or
        ``None``), ``improved``, ``degraded``, ``unchanged``, ``tolerance``; the metrics are
        ``None`` when no example is paired.
    """
    common = sorted(set(a) & set(b))
    iou_a = np.array([float(a[e]["iou"]) for e in common], dtype=np.float64)
    iou_b = np.array([float(b[e]["iou"]) for e in common], dtype=np.float64)
    diff = iou_b - iou_a
    images = [str(a[e].get("image_id", e)) for e in common]
    changes = [change_of(float(d), tolerance) for d in diff]
    out: dict[str, Any] = {
        "n_expressions": len(common),
        "n_images": len(set(images)),
        "only_a": len(set(a) - set(b)),
        "only_b": len(set(b) - set(a)),
        "tolerance": tolerance,
        **{kind: changes.count(kind) for kind in ("improved", "degraded", "unchanged")},
        "miou_a": float(iou_a.mean()) if common else None,
        "miou_b": float(iou_b.mean()) if common else None,
        "diff": float(diff.mean()) if common else None,
        "ci": None,
        "bootstrap": {"resamples": B, "unit": "image", "seed": seed, "alpha": alpha},
    }
    if common and B > 0:
        out["ci"] = cluster_bootstrap_ci(diff, images, B=B, seed=seed, alpha=alpha)
    return out


def cluster_bootstrap_ci(
    values: np.ndarray, clusters: list[str], *, B: int = DEFAULT_BOOTSTRAP, seed: int = 0, alpha: float = 0.05
) -> list[float]:
    """Percentile interval of the mean of ``values`` resampling whole clusters (images).

    Raises:
        ValueError: no values, or ``values`` and ``clusters`` differ in length.
    """
    if len(values) == 0 or len(values) != len(clusters):
        raise ValueError(f"{len(values)} values for {len(clusters)} cluster labels")
    labels, index = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(labels))
    sizes = np.bincount(index, minlength=len(labels)).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(B)
    chunk = max(1, 4_000_000 // len(labels))  # bounded (draws x images) index matrices
    for start in range(0, B, chunk):
        draws = rng.integers(0, len(labels), size=(min(chunk, B - start), len(labels)))
        means[start : start + len(draws)] = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def paired_line(name_a: str, name_b: str, result: Mapping[str, Any]) -> str:
    """The comparison in one line, e.g. ``loop_iter3 - oneshot: mIoU +0.071 [0.052, 0.090]
    (95% CI, 40 images resampled); 120 improved, 8 degraded, 562 unchanged (|dIoU| <= 0.01)
    of 690 paired expressions``."""
    if result.get("diff") is None:
        return f"{name_b} - {name_a}: no example in common"
    ci = result.get("ci")
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}] (95% CI, {result['n_images']} images resampled)" if ci else ""
    return (
        f"{name_b} - {name_a}: mIoU {result['diff']:+.3f}{interval}; {result['improved']} improved, "
        f"{result['degraded']} degraded, {result['unchanged']} unchanged (|dIoU| <= {result['tolerance']:g}) "
        f"of {result['n_expressions']} paired expressions"
    )
