"""Paired comparison of two runs over the same examples: what an ablation table needs.

The difference ``B - A`` of a metric (the protocol's headline, mIoU by default) over the
examples both runs recorded, with a 95% confidence interval from a **cluster** bootstrap
that resamples *images*, not expressions: the expressions of one image share its proposals
and its difficulty, so they are not independent, and resampling them one by one would give
an interval that is too narrow. Each resample draws as many images as there are, with
replacement, and takes the metric of B minus that of A over all expressions of the drawn
images (for mIoU: the mean difference, each expression weighing the same). Counts of
improved / degraded / unchanged examples use a stated IoU tolerance: a difference within
``±tolerance`` is unchanged. Failed examples count IoU 0, as in mIoU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.data.protocol import Metric
from bench.data.protocols import MIOU
from bench.metrics import DEFAULT_BOOTSTRAP, rough_interval_note
from bench.records import SampleRecord

DEFAULT_TOLERANCE = 0.01


def change_of(diff: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """``improved``, ``degraded`` or ``unchanged``: IoU B - IoU A against ``tolerance``.

    The one rule behind the paired counts, `bench cases` and the viewer's filter.
    """
    if diff > tolerance:
        return "improved"
    return "degraded" if diff < -tolerance else "unchanged"


def paired_comparison(
    a: Mapping[str, SampleRecord],
    b: Mapping[str, SampleRecord],
    *,
    metric: Metric = MIOU,
    B: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    alpha: float = 0.05,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Compare run B with run A example by example.

    Args:
        a, b: records by example id (``samples.jsonl``).
        metric: what is compared (the protocol's headline; a ratio of per-example sums).
        B: bootstrap resamples of images (0: no interval).
        seed: bootstrap seed (the same seed gives the same interval).
        alpha: 1 - confidence level.
        tolerance: ``|IoU_B - IoU_A| <= tolerance`` counts as unchanged.

    Returns:
        ``n_expressions`` and ``n_images`` paired, ``only_a`` / ``only_b`` (examples one run
        lacks, left out), ``metric`` and ``label`` (what is compared), ``value_a``,
        ``value_b``, ``diff`` (B - A), ``ci`` ([lo, hi] or ``None``), ``improved``,
        ``degraded``, ``unchanged``, ``tolerance``; the values are ``None`` when no example
        is paired (or none the metric applies to).
    """
    common = sorted(set(a) & set(b))
    recs_a, recs_b = [a[e] for e in common], [b[e] for e in common]
    images = [r.image_id for r in recs_a]
    changes = [change_of(rb.iou - ra.iou, tolerance) for ra, rb in zip(recs_a, recs_b, strict=True)]
    value_a, value_b = metric.value(recs_a), metric.value(recs_b)
    diff = None if value_a is None or value_b is None else value_b - value_a
    out: dict[str, Any] = {
        "n_expressions": len(common),
        "n_images": len(set(images)),
        "only_a": len(set(a) - set(b)),
        "only_b": len(set(b) - set(a)),
        "tolerance": tolerance,
        **{kind: changes.count(kind) for kind in ("improved", "degraded", "unchanged")},
        "metric": metric.key,
        "label": metric.label,
        "value_a": value_a,
        "value_b": value_b,
        "diff": diff,
        "ci": None,
        "bootstrap": {"resamples": B, "unit": "image", "seed": seed, "alpha": alpha},
    }
    if diff is not None and B > 0:
        out["ci"] = _paired_ci(metric, recs_a, recs_b, B=B, seed=seed, alpha=alpha)
    return out


def _paired_ci(
    metric: Metric, a: list[SampleRecord], b: list[SampleRecord], *, B: int, seed: int, alpha: float
) -> list[float]:
    """Percentile interval of ``metric(B) - metric(A)`` resampling images (both runs' records
    of the drawn images)."""
    keep = [
        i for i, (ra, rb) in enumerate(zip(a, b, strict=True)) if metric.applies(ra) and metric.applies(rb)
    ]
    labels, index = np.unique(np.array([a[i].image_id for i in keep], dtype=str), return_inverse=True)

    def sums(recs: list[SampleRecord]) -> tuple[np.ndarray, np.ndarray]:
        num = np.array([metric.numerator(recs[i]) for i in keep], dtype=np.float64)
        den = np.array([metric.denominator(recs[i]) for i in keep], dtype=np.float64)
        return (
            np.bincount(index, weights=num, minlength=len(labels)),
            np.bincount(index, weights=den, minlength=len(labels)),
        )

    (num_a, den_a), (num_b, den_b) = sums(a), sums(b)
    rng = np.random.default_rng(seed)
    diffs = np.empty(B)
    chunk = max(1, 4_000_000 // max(len(labels), 1))  # bounded (draws x images) index matrices
    for start in range(0, B, chunk):
        draws = rng.integers(0, len(labels), size=(min(chunk, B - start), len(labels)))
        ratio_a = _ratio(num_a[draws].sum(axis=1), den_a[draws].sum(axis=1), metric.empty)
        ratio_b = _ratio(num_b[draws].sum(axis=1), den_b[draws].sum(axis=1), metric.empty)
        diffs[start : start + len(draws)] = ratio_b - ratio_a
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, empty), where=den > 0)


def paired_line(name_a: str, name_b: str, result: Mapping[str, Any]) -> str:
    """The comparison in one line, e.g. ``loop_iter3 - oneshot: mIoU +0.071 [0.052, 0.090]
    (95% CI, 40 images resampled); 120 improved, 8 degraded, 562 unchanged (|dIoU| <= 0.01)
    of 690 paired expressions``."""
    if result.get("diff") is None:
        return f"{name_b} - {name_a}: no example in common"
    ci = result.get("ci")
    rough = rough_interval_note(result["n_images"])
    resampled = f"{result['n_images']} images resampled" + (f"; {rough}" if rough else "")
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}] (95% CI, {resampled})" if ci else ""
    line = (
        f"{name_b} - {name_a}: {result.get('label', 'mIoU')} {result['diff']:+.3f}{interval}; "
        f"{result['improved']} improved, "
        f"{result['degraded']} degraded, {result['unchanged']} unchanged (|dIoU| <= {result['tolerance']:g}) "
        f"of {result['n_expressions']} paired expressions"
    )
    only_a, only_b = result.get("only_a", 0), result.get("only_b", 0)
    if only_a or only_b:  # runs of different sizes: say what was left out
        line += (
            f" (only the expressions both runs hold: {name_a} has {result['n_expressions'] + only_a}, "
            f"{name_b} {result['n_expressions'] + only_b})"
        )
    return line
