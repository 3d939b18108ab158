"""Protocols: per-example scoring (ignore regions, empty targets), metrics as ratios of sums over
the records they apply to, breakdowns, and checks on a protocol's declaration. The metrics of
the generalised benchmarks (gIoU, N-acc, T-acc) are written here the way such a protocol would
declare them, and checked against a recomputation by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import Breakdown, EvalProtocol, GroundTruth, Metric, score_masks
from bench.data.protocols import CIOU, MIOU
from bench.records import SampleRecord


def _mask(rows: slice, cols: slice, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[rows, cols] = True
    return out


def test_ignore_regions_are_neither_right_nor_wrong() -> None:
    gt = _mask(slice(0, 4), slice(0, 4))  # 16 pixels
    pred = _mask(slice(0, 4), slice(2, 6))  # 8 on the target, 8 off it
    plain = score_masks(pred, GroundTruth(gt))
    assert (plain.inter, plain.union, plain.gt_area, plain.pred_area) == (8, 24, 16, 16)
    ignore = _mask(slice(0, 4), slice(4, 6))  # the prediction's 8 wrong pixels are ignored
    scored = score_masks(pred, GroundTruth(gt, ignore))
    assert (scored.inter, scored.union, scored.gt_area, scored.pred_area) == (8, 16, 16, 8)
    assert scored.iou == 0.5
    with pytest.raises(ValueError, match="shape"):
        score_masks(pred[:5], GroundTruth(gt))


def _record(
    i: int, pred: np.ndarray | None, gt: np.ndarray, tags: dict[str, str] | None = None
) -> SampleRecord:
    """What the runner records for one example (``pred=None``: it failed)."""
    rec = SampleRecord(index=i, example_id=f"e{i}", image_id=f"img{i // 2}", sentence="s", tags=tags or {})
    if pred is None:
        rec.gt_area = rec.union = int(gt.sum())
        return rec
    s = score_masks(pred, GroundTruth(gt))
    rec.failed, rec.iou, rec.inter, rec.union, rec.gt_area, rec.pred_area = (
        False, s.iou, s.inter, s.union, s.gt_area, s.pred_area,
    )  # fmt: skip
    return rec


def _no_target(rec: SampleRecord) -> bool:
    return rec.gt_area == 0


GENERALISED = EvalProtocol(
    name="generalised-test",
    description="gIoU, cIoU, N-acc, T-acc",
    metrics=(
        Metric("giou", "gIoU", "mean IoU; an empty prediction of an empty target is 1", lambda r: r.iou),
        CIOU,
        Metric(
            "n_acc",
            "N-acc",
            "no-target expressions answered with an empty mask",
            lambda r: float(not r.failed and r.predicted_area == 0),
            applies=_no_target,
        ),
        Metric(
            "t_acc",
            "T-acc",
            "target expressions answered with a mask",
            lambda r: float(r.predicted_area > 0),
            applies=lambda r: not _no_target(r),
        ),
    ),
    headline="giou",
    breakdowns=(Breakdown("query", "query kind", lambda r: r.tags.get("query"), ("short",), ("giou",)),),
)


def test_generalised_metrics_against_a_recomputation() -> None:
    empty, target = np.zeros((10, 10), bool), _mask(slice(0, 4), slice(0, 4))
    records = [
        _record(0, empty.copy(), empty, {"query": "short"}),  # no target, answered empty: right
        _record(1, target, empty, {"query": "long"}),  # no target, answered a mask: wrong
        _record(2, None, empty),  # no target, failed: not an answer
        _record(3, target, target, {"query": "short"}),
        _record(4, _mask(slice(0, 4), slice(0, 2)), target, {"query": "sentence"}),
        _record(5, empty.copy(), target),  # a target, answered empty
    ]
    s = GENERALISED.summarize(records, bootstrap=200)
    ious = [1.0, 0.0, 0.0, 1.0, 0.5, 0.0]
    assert s.value("giou") == pytest.approx(np.mean(ious))
    assert s.value("ciou") == pytest.approx((0 + 0 + 16 + 8) / (0 + 16 + 0 + 16 + 16 + 16))
    assert s.value("n_acc") == pytest.approx(1 / 3) and s.value("t_acc") == pytest.approx(2 / 3)
    lo, hi = s.ci("giou") or (None, None)
    assert lo is not None and hi is not None and lo <= s.value("giou") <= hi
    by_query = s.breakdowns["query"]
    assert list(by_query) == ["short", "long", "sentence"]  # declared groups first, then the rest
    assert (by_query["short"].n, by_query["short"].value("giou")) == (2, 1.0)
    assert by_query["sentence"].value("giou") == 0.5 and sum(g.n for g in by_query.values()) == 4
    assert s.protocol == "generalised-test" and s.headline == "giou" and s.n == 6


def test_a_metric_over_no_record_is_none_not_zero() -> None:
    target = _mask(slice(0, 4), slice(0, 4))
    s = GENERALISED.summarize([_record(0, target, target)], bootstrap=50)
    assert s.value("n_acc") is None and s.ci("n_acc") is None  # no expression without a target
    assert s.value("t_acc") == 1.0
    assert MIOU.value([]) is None


def test_a_protocol_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="headline 'dice' is not one of its metrics"):
        EvalProtocol("p", "d", (MIOU,), headline="dice")
    with pytest.raises(ValueError, match="unknown metric"):
        EvalProtocol("p", "d", (MIOU,), "miou", (Breakdown("b", "b", lambda r: "x", metrics=("ciou",)),))
    with pytest.raises(ValueError, match="duplicate"):
        EvalProtocol("p", "d", (MIOU, MIOU), "miou")
