"""Paired comparison of two runs: the headline metric's difference, a bootstrap CI over images,
change counts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.protocols import CIOU
from bench.metrics import bootstrap_ci
from bench.records import SampleRecord
from bench.report.paired import change_of, paired_comparison, paired_line


def record(example_id: str, image_id: str, iou: float, inter: int = 0, union: int = 1) -> SampleRecord:
    return SampleRecord(
        index=0,
        example_id=example_id,
        image_id=image_id,
        sentence="x",
        failed=False,
        iou=iou,
        inter=inter,
        union=union,
    )


def records(ious: list[float], per_image: int = 3) -> dict[str, SampleRecord]:
    return {f"e{i}": record(f"e{i}", f"img{i // per_image}", v) for i, v in enumerate(ious)}


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
    assert paired_comparison(records([0.1]), {"x": record("x", "i", 1.0)}, B=10)["diff"] is None


def test_the_interval_resamples_images_not_expressions() -> None:
    # Expressions of one image move together: resampling them one by one would pretend there
    # is ten times more evidence than there is, and give too narrow an interval.
    image_effect = np.random.default_rng(3).normal(0, 0.2, 20)
    diffs = np.repeat(image_effect, 10)
    base = [0.5] * 200
    a = {f"e{i}": record(f"e{i}", f"img{i // 10}", base[i]) for i in range(200)}
    b = {f"e{i}": record(f"e{i}", f"img{i // 10}", base[i] + d) for i, d in enumerate(diffs)}
    by_image = paired_comparison(a, b, B=2000)["ci"]
    _, lo, hi = bootstrap_ci(diffs, B=2000)
    assert (by_image[1] - by_image[0]) > 2 * (hi - lo)
    # With one expression per image both resample the same units.
    a1 = {f"e{k}": record(f"e{k}", f"i{k}", 0.5) for k in range(20)}
    b1 = {f"e{k}": record(f"e{k}", f"i{k}", 0.5 + d) for k, d in enumerate(image_effect)}
    single = paired_comparison(a1, b1, B=4000, seed=5)["ci"]
    _, lo, hi = bootstrap_ci(image_effect, B=4000, seed=5)
    assert single == pytest.approx([lo, hi], abs=0.03)


def test_a_ratio_headline_is_compared_as_a_ratio_of_sums() -> None:
    # cIoU: B's big object improves a lot, its small ones worsen a little; the cumulative
    # ratio weighs the big one (mIoU would say B is worse).
    a = {"big": record("big", "i0", 0.5, 500, 1000), "s1": record("s1", "i1", 0.9, 9, 10)}
    b = {"big": record("big", "i0", 0.9, 900, 1000), "s1": record("s1", "i1", 0.1, 1, 10)}
    res = paired_comparison(a, b, metric=CIOU, B=200)
    assert (res["metric"], res["label"]) == ("ciou", "cIoU")
    assert res["value_a"] == pytest.approx(509 / 1010) and res["value_b"] == pytest.approx(901 / 1010)
    assert res["diff"] == pytest.approx(392 / 1010)
    assert paired_comparison(a, b, B=0)["diff"] == pytest.approx(-0.2)  # mIoU: B is worse
    assert paired_line("A", "B", res).startswith("B - A: cIoU +0.388 [")


def test_one_rule_for_improved_degraded_unchanged() -> None:
    from bench.report.cases import case_totals

    assert [change_of(d, 0.05) for d in (0.0501, 0.05, -0.05, -0.0501)] == [
        "improved",
        "unchanged",
        "unchanged",
        "degraded",
    ]
    a = {str(i): record(str(i), str(i), 0.5) for i in range(4)}
    b = {str(i): record(str(i), str(i), 0.5 + d) for i, d in enumerate((0.2, -0.2, 0.005, 0.0))}
    paired = paired_comparison(a, b, B=0)
    totals = case_totals(a, b)
    for kind, count in (("improved", 1), ("degraded", 1), ("unchanged", 2)):
        assert paired[kind] == totals[kind] == count
