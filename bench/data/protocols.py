"""The built-in protocol: per-expression mask IoU, as RefCOCO-style benchmarks report it."""

from __future__ import annotations

from bench.data.protocol import Breakdown, EvalProtocol, Metric
from bench.metrics import BUCKETS, PR_THRESHOLDS
from bench.records import SampleRecord


def _iou(rec: SampleRecord) -> float:
    return rec.iou


def _inter(rec: SampleRecord) -> float:
    return float(rec.inter)


def _union(rec: SampleRecord) -> float:
    return float(rec.union)


def _size(rec: SampleRecord) -> str | None:
    return rec.bucket  # None when the ground truth's area is unknown (a corrupt mask)


def precision_at(t: float) -> Metric:
    """``Pr@t``: the fraction of expressions with IoU >= t (as LAVT and CRIS count it)."""

    def hit(rec: SampleRecord) -> float:
        return float(rec.iou >= t)

    return Metric(
        f"pr@{t:.1f}",
        f"Pr@{t:.1f}",
        f"fraction of expressions with IoU >= {t:g}",
        hit,
        interval=False,
    )


MIOU = Metric("miou", "mIoU", "mean IoU over expressions (a failed one counts 0)", _iou)
CIOU = Metric(
    "ciou",
    "cIoU",
    "cumulative IoU: all intersections over all unions (RES papers' overall IoU; large objects weigh more)",
    _inter,
    _union,
)
SIZE = Breakdown("size", "object size (COCO: small < 32², medium < 96², large)", _size, BUCKETS, ("miou",))

MASK_IOU = EvalProtocol(
    name="mask-iou",
    description="per-expression mask IoU against one target mask: mIoU (headline), cIoU, "
    "Pr@0.5..0.9; mIoU by object size",
    metrics=(MIOU, CIOU, *(precision_at(t) for t in PR_THRESHOLDS)),
    headline="miou",
    breakdowns=(SIZE,),
)
