"""Post-processing of SAM's automatic mask generator, kept on the model's device.

Per decoded batch: the predicted-IoU filter on the low-resolution logits, then upscaling of
the survivors only (in chunks, in float32 whatever precision the decoder ran at), the
stability score and its filter, thresholding, boxes and areas. Kept candidates stay on the
device, masks bit-packed along W (8x smaller). After the last batch: box NMS and the
``max_proposals`` cut on the device; only the final survivors, still packed, move to the
host. Until then no data is copied to the host (the filters' boolean indexing only waits
for the device to know how many candidates are left). The clean-up of small regions
(``min_mask_region_area``) needs scipy and runs on the host, on the NMS survivors.

When box NMS keeps every box (``box_nms_thresh`` 1, as with open thresholds), the proposals
are just the best-scored candidates that pass the filters: only the best few hundred low-res
logits are held while decoding (:class:`TopScored`) and only as many are upscaled as it takes
to fill ``max_proposals`` (:func:`top_candidates`), not all ``3 x points`` of them.

The official generator instead upscales every mask before filtering and converts each one
to RLE on the host; the masks, scores and order are the same (tests compare both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score
from torchvision.ops.boxes import batched_nms

# Float elements per upscaling chunk (~128 MB): bounds memory whatever the image size.
CHUNK_ELEMENTS = 32 * 1024 * 1024
_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)  # np.packbits' bit order (big-endian)


class FilterKnobs(Protocol):
    """The :class:`tools.sam_propose.SamProposeParams` fields post-processing reads."""

    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    box_nms_thresh: float
    min_area: int
    max_proposals: int
    min_mask_region_area: int


def pack_bits(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W) bool`` -> ``(N, H, ceil(W / 8)) uint8``, bit for bit like ``np.packbits``."""
    if masks.device.type == "cpu":  # numpy's is ~15x faster there, and shares the memory
        return torch.from_numpy(np.packbits(masks.numpy(), axis=-1))
    return pack_bits_torch(masks)


def pack_bits_torch(masks: torch.Tensor) -> torch.Tensor:
    """:func:`pack_bits` in torch ops, on the masks' device."""
    n, h, w = masks.shape
    pad = (-w) % 8
    bytes_ = masks.to(torch.uint8)
    if pad:
        bytes_ = torch.nn.functional.pad(bytes_, (0, pad))
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=masks.device)
    return (bytes_.view(n, h, (w + pad) // 8, 8) * weights).sum(-1, dtype=torch.uint8)


@dataclass
class DeviceCandidates:
    """Candidates that passed the per-batch filters, on the model's device."""

    packed: list[torch.Tensor] = field(default_factory=list)
    boxes: list[torch.Tensor] = field(default_factory=list)
    scores: list[torch.Tensor] = field(default_factory=list)
    stability: list[torch.Tensor] = field(default_factory=list)
    areas: list[torch.Tensor] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(s) for s in self.scores)


@dataclass
class HostSurvivors:
    """NMS survivors on the host, best predicted IoU first (masks unpacked)."""

    masks: np.ndarray  # (K, H, W) bool
    boxes: np.ndarray  # (K, 4) float32
    scores: np.ndarray  # (K,) float32
    stability: np.ndarray  # (K,) float32
    areas: np.ndarray  # (K,) int64


def filter_batch(
    model: Sam,
    low_res: torch.Tensor,
    iou: torch.Tensor,
    knobs: FilterKnobs,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    out: DeviceCandidates,
    *,
    iou_filter: bool = True,
) -> None:
    """Filter one decoded batch (``(M, h, w)`` logits, ``(M,)`` predicted IoU) into ``out``
    (``iou_filter=False``: the predicted-IoU filter was applied already)."""
    low_res, iou = low_res.float(), iou.float()  # masks are thresholded in float32
    if iou_filter and knobs.pred_iou_thresh > 0.0:
        keep = iou > knobs.pred_iou_thresh
        low_res, iou = low_res[keep], iou[keep]
    h, w = original_size
    side = model.image_encoder.img_size
    chunk = max(1, CHUNK_ELEMENTS // (side * side + h * w))
    for start in range(0, len(iou), chunk):
        part = low_res[start : start + chunk, None]
        logits = model.postprocess_masks(part, input_size, original_size)[:, 0]
        scores = iou[start : start + chunk]
        stability = calculate_stability_score(logits, model.mask_threshold, knobs.stability_score_offset)
        if knobs.stability_score_thresh > 0.0:
            keep = stability >= knobs.stability_score_thresh
            logits, scores, stability = logits[keep], scores[keep], stability[keep]
        masks = logits > model.mask_threshold
        del logits
        # Empty masks are never useful candidates, whatever min_area says.
        areas = masks.flatten(1).sum(1)
        keep = areas >= max(1, knobs.min_area)
        masks = masks[keep]
        if len(masks) == 0:
            continue
        out.areas.append(areas[keep])
        out.boxes.append(batched_mask_to_box(masks).float())
        out.scores.append(scores[keep])
        out.stability.append(stability[keep])
        out.packed.append(pack_bits(masks))


def nms_survivors(
    found: DeviceCandidates, knobs: FilterKnobs, width: int, limit: int | None
) -> HostSurvivors:
    """Box NMS on the device, best first, at most ``limit`` kept; then to the host.

    Args:
        found: the candidates of every batch (not empty).
        knobs: ``box_nms_thresh`` is read.
        width: mask width (to drop the packing's padding bits).
        limit: keep this many at most (None: all survivors, e.g. for a host-side clean-up
            that may still drop some).
    """
    boxes = torch.cat(found.boxes)
    scores = torch.cat(found.scores)
    stability = torch.cat(found.stability)
    categories = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
    keep = batched_nms(boxes, scores, categories, iou_threshold=knobs.box_nms_thresh)
    # A stable sort: equal scores keep NMS's order, as the official generator does.
    order = torch.sort(scores[keep], descending=True, stable=True).indices
    keep = keep[order[:limit] if limit is not None else order]
    packed = torch.cat(found.packed)[keep].cpu().numpy()
    return HostSurvivors(
        masks=np.unpackbits(packed, axis=-1, count=width).astype(bool),
        boxes=boxes[keep].cpu().numpy().astype(np.float32),
        scores=scores[keep].cpu().numpy().astype(np.float32),
        stability=stability[keep].cpu().numpy().astype(np.float32),
        areas=torch.cat(found.areas)[keep].cpu().numpy().astype(np.int64),
    )


def fewest_upscaled(knobs: FilterKnobs) -> bool:
    """Whether only the best-scored candidates need upscaling: box NMS at an IoU threshold of
    1 keeps every box (no IoU is above 1), and no host-side clean-up may drop survivors."""
    return knobs.box_nms_thresh >= 1.0 and knobs.min_mask_region_area == 0


@dataclass
class TopScored:
    """The best-scored candidates' low-resolution logits, for when NMS keeps every box.

    Then the proposals are the ``max_proposals`` best-scored candidates that pass the filters,
    so only those need upscaling: the others' logits are dropped as they are decoded (at most
    ``cap`` are held). ``scores`` keeps every candidate's score: with two equal scores the
    order of the reference (an unstable sort) is not defined here, and the caller goes the
    full way.
    """

    cap: int
    logits: torch.Tensor | None = None  # (P, h, w) float32, best first
    iou: torch.Tensor | None = None  # (P,)
    scores: list[torch.Tensor] = field(default_factory=list)
    dropped: bool = False  # some candidate that passed the IoU filter is no longer held

    def add(self, low_res: torch.Tensor, iou: torch.Tensor, pred_iou_thresh: float) -> None:
        low_res, iou = low_res.float(), iou.float()
        self.scores.append(iou)
        if pred_iou_thresh > 0.0:
            keep = iou > pred_iou_thresh
            low_res, iou = low_res[keep], iou[keep]
        if self.logits is not None and self.iou is not None:
            low_res, iou = torch.cat([self.logits, low_res]), torch.cat([self.iou, iou])
        order = torch.sort(iou, descending=True, stable=True).indices
        self.dropped = self.dropped or len(order) > self.cap
        order = order[: self.cap]
        self.logits, self.iou = low_res[order], iou[order]

    def tied(self) -> bool:
        scores = torch.cat(self.scores)
        return bool(torch.unique(scores).numel() != scores.numel())


def top_candidates(
    model: Sam,
    top: TopScored,
    knobs: FilterKnobs,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
) -> DeviceCandidates | None:
    """The candidates when NMS keeps every box: the held ones are upscaled best first, only as
    many as still needed, until ``max_proposals`` pass the filters. :func:`nms_survivors` of
    them gives the same masks, scores and order as the full way (:func:`filter_batch` on every
    batch). ``None`` when that cannot be promised: two equal scores, or too few of the held
    candidates passed while others were dropped.
    """
    found = DeviceCandidates()
    if top.logits is None or top.iou is None:
        return found
    if top.tied():
        return None
    h, w = original_size
    most = max(1, CHUNK_ELEMENTS // (model.image_encoder.img_size**2 + h * w))
    start = 0
    while start < len(top.iou) and len(found) < knobs.max_proposals:
        needed = knobs.max_proposals - len(found)
        end = start + min(most, needed if start == 0 else max(2 * needed, 8))  # filters drop some
        part = slice(start, end)
        filter_batch(
            model, top.logits[part], top.iou[part], knobs, input_size, original_size, found, iou_filter=False
        )
        start = end
    if len(found) < knobs.max_proposals and top.dropped:
        return None  # a dropped candidate might have been next
    return found
