"""segment-anything's own ``SamAutomaticMaskGenerator`` beside ``sam_propose``: time and masks.

Both run on the same model object and the same images, one after the other in one run.
Masks are compared exactly (bit for bit, through a hash of each packed mask) after putting
the official records in our order (best predicted IoU first) and dropping its empty masks
(``sam_propose`` never returns an empty mask). ``sam_propose`` keeps at most
``max_proposals`` masks, so the official list is cut at the same length. Masks that have no
exact twin get their best IoU with the official masks that are unmatched too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import rle_to_mask

from bench.benchmarks.speed.machine import PeakMemory, peak_memory, timed
from bench.benchmarks.speed.setup import Models, NamedImage
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import Proposals

IOU_CHECK_LIMIT = 256  # best-IoU statistics for at most this many unmatched masks per image


@dataclass(frozen=True)
class Agreement:
    """How ``sam_propose``'s masks compare with the official generator's on one setting.

    Attributes:
        thresholds: ``default`` or ``open`` (quality filters and NMS off).
        ours: masks ``sam_propose`` returned (summed over images).
        official: non-empty official masks compared (cut to our count per image).
        exact: our masks with a bit-identical official twin.
        min_iou: lowest best-IoU of an unmatched mask (1.0 when all match; NaN if none compared).
        mean_iou: mean best-IoU over all our masks (exact ones count 1.0).
    """

    thresholds: str
    ours: int
    official: int
    exact: int
    min_iou: float
    mean_iou: float

    @property
    def compared(self) -> bool:
        """Any mask to compare: with none on either side, agreement was never checked."""
        return self.ours > 0 or self.official > 0

    @property
    def agree(self) -> bool | None:
        """Every mask has a bit-identical twin; ``None`` when nothing was compared."""
        return self.ours == self.official == self.exact if self.compared else None


@dataclass(frozen=True)
class ReferenceResult:
    """Seconds of the official generator (per image, in image order) and mask agreement."""

    official_seconds: list[float]
    agreements: list[Agreement]
    peak: PeakMemory | None


def _digest(mask: np.ndarray) -> str:
    return hashlib.sha1(np.packbits(mask, axis=-1).tobytes()).hexdigest()


def _generator(
    models: Models, params: SamProposeParams, points_per_batch: int, output_mode: str = "binary_mask"
) -> SamAutomaticMaskGenerator:
    return SamAutomaticMaskGenerator(
        models.sam,
        points_per_side=params.points_per_side,
        points_per_batch=points_per_batch,
        pred_iou_thresh=params.pred_iou_thresh,
        stability_score_thresh=params.stability_score_thresh,
        stability_score_offset=params.stability_score_offset,
        box_nms_thresh=params.box_nms_thresh,
        min_mask_region_area=params.min_mask_region_area,
        output_mode=output_mode,
    )


def official_masks(records: list[dict], ours: Proposals, max_proposals: int) -> list[np.ndarray]:
    """The official records' non-empty masks, best predicted IoU first, cut like ours.

    ``records`` hold binary masks or uncompressed RLE (decoded here, after the cut, so a
    dense grid with every filter off never holds thousands of full-size masks at once).
    """
    kept = [r for r in records if r["area"] > 0]
    kept.sort(key=lambda r: -r["predicted_iou"])  # stable, like sam_propose's order
    if len(ours) == max_proposals:  # ours were cut: compare with as many of theirs
        kept = kept[: len(ours)]
    return [
        rle_to_mask(r["segmentation"]) if isinstance(r["segmentation"], dict) else r["segmentation"]
        for r in kept
    ]


def _best_ious(ours: list[np.ndarray], theirs: list[np.ndarray]) -> np.ndarray:
    """Best IoU of each of ``ours`` with any of ``theirs``."""
    if not ours or not theirs:
        return np.zeros(len(ours))
    a = np.stack(ours).reshape(len(ours), -1).astype(np.float32)
    b = np.stack(theirs).reshape(len(theirs), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return (inter / np.maximum(union, 1.0)).max(axis=1)


def compare(ours: Proposals, theirs: list[np.ndarray]) -> tuple[int, int, list[float]]:
    """(exact matches, official masks compared, best IoUs of our unmatched masks)."""
    pool: dict[str, int] = {}
    for mask in theirs:
        key = _digest(mask)
        pool[key] = pool.get(key, 0) + 1
    exact, unmatched = 0, []
    for mask in ours.masks:
        key = _digest(mask)
        if pool.get(key, 0) > 0:
            pool[key] -= 1
            exact += 1
        else:
            unmatched.append(mask)
    if not unmatched:
        return exact, len(theirs), []
    rest = [m for m in theirs if pool.get(_digest(m), 0) > 0][:IOU_CHECK_LIMIT]
    return exact, len(theirs), _best_ious(unmatched[:IOU_CHECK_LIMIT], rest).tolist()


def agreement(thresholds: str, pairs: list[tuple[Proposals, list[np.ndarray]]]) -> Agreement:
    """Sum :func:`compare` over images into one :class:`Agreement`."""
    ours = official = exact = 0
    ious: list[float] = []
    for props, theirs in pairs:
        e, n, unmatched = compare(props, theirs)
        ours, official, exact = ours + len(props), official + n, exact + e
        ious += unmatched
    mean = (exact + sum(ious)) / (exact + len(ious)) if exact + len(ious) else float("nan")
    return Agreement(thresholds, ours, official, exact, min(ious, default=1.0), mean)


def run_reference(
    models: Models,
    tool: SamPropose,
    images: list[NamedImage],
    params: SamProposeParams,
    thresholds: str,
    timed_proposals: list[Proposals],
    open_params: SamProposeParams | None,
) -> ReferenceResult:
    """Time the official generator on every image and compare masks with ours.

    Args:
        models: the shared models (the official generator gets the same SAM object).
        tool: our tool (its cached embeddings make the open comparison decode-only).
        images: the images, in order.
        params: the parameters of the timed pass.
        thresholds: what ``params`` are called in the report (``default`` or ``open``).
        timed_proposals: our proposals from the timed pass.
        open_params: parameters with the filters off for a second comparison (None: skip).
    """
    device = models.settings.device
    batch = tool.points_per_batch(params)
    generator = _generator(models, params, batch)
    seconds, pairs = [], []
    with peak_memory(device) as memory:
        for named, ours in zip(images, timed_proposals, strict=True):
            with timed(device) as watch:
                records = generator.generate(named.image.pixels)
            seconds.append(watch.seconds)
            pairs.append((ours, official_masks(records, ours, params.max_proposals)))
    agreements = [agreement(thresholds, pairs)]
    if open_params is not None:
        open_generator = _generator(models, open_params, batch, output_mode="uncompressed_rle")
        open_pairs = []
        for named in images:
            ours = tool.propose_sync(named.image, open_params)
            records = open_generator.generate(named.image.pixels)
            open_pairs.append((ours, official_masks(records, ours, open_params.max_proposals)))
        agreements.append(agreement("open", open_pairs))
    return ReferenceResult(seconds, agreements, memory.peak)
