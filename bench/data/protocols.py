"""The built-in protocols.

- :data:`MASK_IOU` (``mask-iou``): per-expression mask IoU against one target, as RefCOCO-style
  benchmarks report it (RefCOCO-M, the RefCOCO family, generated scenes).
- :data:`GRES` (``gres``): generalised referring segmentation (gRefCOCO, a JSONL of your own):
  expressions may refer to several objects or to none; gIoU, cIoU, N-acc, T-acc, as ReLA's
  evaluator defines them.
- :data:`REASONSEG` (``reasonseg``): reasoning segmentation (ReasonSeg): gIoU and cIoU, by
  short query and long sentence, as LISA reports them.

Every IoU counts an empty prediction of an empty target as 1 and leaves ``ignore`` pixels out
(:func:`bench.data.protocol.score_masks`); a failed example counts IoU 0 and its target's
pixels in the cumulative union.
"""

from __future__ import annotations

from collections.abc import Callable

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


def _every(_rec: SampleRecord) -> bool:
    return True


def precision_at(
    t: float, applies: Callable[[SampleRecord], bool] = _every, over: str = "expressions"
) -> Metric:
    """``Pr@t``: the fraction of expressions (those ``applies`` keeps, named by ``over``) with
    IoU >= t (as LAVT and CRIS count it)."""

    def hit(rec: SampleRecord) -> float:
        return float(rec.iou >= t)

    return Metric(
        f"pr@{t:.1f}",
        f"Pr@{t:.1f}",
        f"fraction of {over} with IoU >= {t:g}",
        hit,
        applies=applies,
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


# --- generalised referring segmentation (gRefCOCO; your own data) -------------------------
# An example's tag "target" says what its expression refers to: "none" (no object), "one",
# "several" (gRefCOCO), or "some" (a mask of your own data): known from the annotation,
# without reading a mask, and kept when an example fails.
TARGET_TAG = "target"
NO_TARGET = "none"


def _no_target(rec: SampleRecord) -> bool:
    return rec.tags.get(TARGET_TAG) == NO_TARGET


def _has_target(rec: SampleRecord) -> bool:
    return rec.tags.get(TARGET_TAG, NO_TARGET) != NO_TARGET


def _answered_empty(rec: SampleRecord) -> float:
    return float(not rec.failed and rec.predicted_area == 0)


def _answered_mask(rec: SampleRecord) -> float:
    return float(not rec.failed and rec.predicted_area > 0)


def _target_size(rec: SampleRecord) -> str | None:
    return rec.bucket if _has_target(rec) else None


GIOU = Metric(
    "giou",
    "gIoU",
    "mean IoU over expressions; an empty prediction of an expression with no target counts 1 "
    "(a failed one counts 0)",
    _iou,
)
N_ACC = Metric(
    "n_acc",
    "N-acc",
    "no-target accuracy: the fraction of expressions with no target answered with an empty mask",
    _answered_empty,
    applies=_no_target,
)
T_ACC = Metric(
    "t_acc",
    "T-acc",
    "target accuracy: the fraction of expressions with a target answered with a non-empty mask",
    _answered_mask,
    applies=_has_target,
)
GRES = EvalProtocol(
    name="gres",
    description="generalised referring segmentation (targets may be several objects or none): "
    "gIoU (headline), cIoU, N-acc, T-acc, Pr@0.7..0.9 over expressions with a target; "
    "gIoU by target kind and object size",
    metrics=(
        GIOU,
        CIOU,
        N_ACC,
        T_ACC,
        *(precision_at(t, _has_target, "expressions with a target") for t in (0.7, 0.8, 0.9)),
    ),
    headline="giou",
    breakdowns=(
        Breakdown(
            TARGET_TAG,
            "target (none, one or several objects)",
            lambda r: r.tags.get(TARGET_TAG),
            (NO_TARGET,),
            ("giou", "ciou"),
        ),
        Breakdown(
            "size",
            "object size, expressions with a target (COCO: small < 32², medium < 96², large)",
            _target_size,
            BUCKETS,
            ("giou",),
        ),
    ),
    empty_targets=True,
)

# --- reasoning segmentation (ReasonSeg) -------------------------------------------------------
QUERY_TAG = "query"  # "short" (a phrase) or "long" (a sentence): ReasonSeg's is_sentence

REASONSEG = EvalProtocol(
    name="reasonseg",
    description="reasoning segmentation: gIoU (headline) and cIoU, ignore regions left out; "
    "both by short query and long sentence",
    metrics=(GIOU, CIOU),
    headline="giou",
    breakdowns=(
        Breakdown(
            QUERY_TAG,
            "query (short phrase or long sentence)",
            lambda r: r.tags.get(QUERY_TAG),
            ("short", "long"),
            ("giou", "ciou"),
        ),
    ),
)
