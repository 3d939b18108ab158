"""Mask overlaps for the SAM 3 tools: which candidates are the same instance, how well a
candidate matches SAM 3's instances for a query.

Masks are compared inside the union of their boxes only, so comparing a few dozen
candidates with a few dozen instances on a large image stays cheap.
"""

from __future__ import annotations

import numpy as np


def mask_iou(a: np.ndarray, a_box: np.ndarray, b: np.ndarray, b_box: np.ndarray) -> float:
    """IoU of two ``(H, W) bool`` masks whose inclusive ``x0, y0, x1, y1`` boxes are given."""
    if a_box[2] < b_box[0] or b_box[2] < a_box[0] or a_box[3] < b_box[1] or b_box[3] < a_box[1]:
        return 0.0
    x0, y0 = int(min(a_box[0], b_box[0])), int(min(a_box[1], b_box[1]))
    x1, y1 = int(max(a_box[2], b_box[2])) + 1, int(max(a_box[3], b_box[3])) + 1
    ca, cb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    union = np.count_nonzero(ca | cb)
    return float(np.count_nonzero(ca & cb) / union) if union else 0.0


def iou_matrix(
    masks: np.ndarray, boxes: np.ndarray, other_masks: np.ndarray, other_boxes: np.ndarray
) -> np.ndarray:
    """``(N, M)`` mask IoUs of ``N`` masks with ``M`` others."""
    out = np.zeros((len(masks), len(other_masks)), dtype=np.float32)
    for i in range(len(masks)):
        for j in range(len(other_masks)):
            out[i, j] = mask_iou(masks[i], boxes[i], other_masks[j], other_boxes[j])
    return out


def match_scores(
    masks: np.ndarray, boxes: np.ndarray, found: np.ndarray, found_boxes: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """Each mask's score against instances ``found`` (with their ``scores``): the best
    ``score x IoU`` over them; 0 where it overlaps none. An instance scores as itself."""
    if len(masks) == 0 or len(found) == 0:
        return np.zeros(len(masks), dtype=np.float32)
    ious = iou_matrix(masks, boxes, found, found_boxes)
    return (ious * scores[None, :].astype(np.float32)).max(axis=1).astype(np.float32)


def new_instances(
    masks: np.ndarray, boxes: np.ndarray, held: np.ndarray, held_boxes: np.ndarray, same_iou: float
) -> list[int]:
    """Indices of ``masks`` that are not already among ``held`` (mask IoU below ``same_iou``
    with every held mask)."""
    if len(held) == 0:
        return list(range(len(masks)))
    ious = iou_matrix(masks, boxes, held, held_boxes)
    return [i for i in range(len(masks)) if float(ious[i].max()) < same_iou]
