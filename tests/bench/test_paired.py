"""Paired comparison of two runs: mIoU difference, a bootstrap CI over images, change counts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import bootstrap_ci
from bench.report.paired import change_of, cluster_bootstrap_ci, paired_comparison, paired_line


def records(ious: list[float], per_image: int = 3) -> dict[str, dict[str, object]]:
    return {f"e{i}": {"iou": v, "image_id": f"img{i // per_image}"} for i, v in enumerate(ious)}


def test_identical_runs_differ_by_zero_with_an_interval_holding_zero() -> None:
    ious = list(np.random.default_rng(0).uniform(0, 1, 60))
    res = paired_comparison(records(ious), records(ious), B=500)
    assert res["diff"] == 0 and res["ci"][0] <= 0 <= res["ci"][1]
    assert (res["improved"], res["degraded"], res["unchanged"]) == (0, 0, 60)
    assert (res["n_images"], res["n_expressions"]) == (20, 60)


def test_a_known_shift_is_found_and_counted_at_the_tolerance() -> None:
    rng = np.random.default_rng(1)
    a = list(rng.uniform(0, 0.8, 90))
    b = [v + 0.1 for v in a]
    b[0] = a[0] + 0.005  # within the tolerance: unchanged
    b[1] = a[1] - 0.3  # a loss
    res = paired_comparison(records(a), records(b), B=1000, tolerance=0.01)
    expected = float(np.mean(np.array(b) - np.array(a)))
    assert res["diff"] == pytest.approx(expected)
    assert res["ci"][0] < expected < res["ci"][1] and res["ci"][0] > 0.05  # excludes 0
    assert (res["improved"], res["degraded"], res["unchanged"]) == (88, 1, 1)
    line = paired_line("A", "B", res)
    assert (
        line.startswith(f"B - A: mIoU {expected:+.3f} [") and "88 improved, 1 degraded, 1 unchanged" in line
    )


def test_examples_only_one_run_has_are_left_out_and_said() -> None:
    a, b = records([0.5, 0.6, 0.7]), records([0.5, 0.9])
    res = paired_comparison(a, b, B=0)
    assert res["n_expressions"] == 2 and res["only_a"] == 1 and res["ci"] is None
    assert res["diff"] == pytest.approx(0.15)
    assert paired_comparison(records([0.1]), {"x": {"iou": 1.0}}, B=10)["diff"] is None


def test_the_interval_resamples_images_not_expressions() -> None:
    # Expressions of one image move together: resampling them one by one would pretend there
    # is ten times more evidence than there is, and give too narrow an interval.
    image_effect = np.random.default_rng(3).normal(0, 0.2, 20)
    diffs = np.repeat(image_effect, 10)
    clusters = [f"img{i}" for i in range(20) for _ in range(10)]
    by_image = cluster_bootstrap_ci(diffs, clusters, B=2000)
    _, lo, hi = bootstrap_ci(diffs, B=2000)
    assert (by_image[1] - by_image[0]) > 2 * (hi - lo)
    # With one expression per image both resample the same units.
    single = cluster_bootstrap_ci(image_effect, [f"i{k}" for k in range(20)], B=4000, seed=5)
    _, lo, hi = bootstrap_ci(image_effect, B=4000, seed=5)
    assert single == pytest.approx([lo, hi], abs=0.03)
    with pytest.raises(ValueError):
        cluster_bootstrap_ci(np.zeros(2), ["a"])


def test_one_rule_for_improved_degraded_unchanged() -> None:
    from bench.report.cases import case_totals

    assert [change_of(d, 0.05) for d in (0.0501, 0.05, -0.05, -0.0501)] == [
        "improved",
        "unchanged",
        "unchanged",
        "degraded",
    ]
    a = {str(i): {"iou": 0.5, "image_id": str(i)} for i in range(4)}
    b = {str(i): {"iou": 0.5 + d, "image_id": str(i)} for i, d in enumerate((0.2, -0.2, 0.005, 0.0))}
    paired = paired_comparison(a, b, B=0)
    totals = case_totals(a, b)
    for kind, count in (("improved", 1), ("degraded", 1), ("unchanged", 2)):
        assert paired[kind] == totals[kind] == count
