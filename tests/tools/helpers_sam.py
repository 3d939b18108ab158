"""Shared helpers for SAM tests: a small scene, the tiny tool, the filters-off knobs, mask IoUs."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np

from tools.base import ToolSettings, Workspace
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import Image

# No filter at all: every decoded, non-empty mask survives (NMS at IoU 1.0 removes nothing).
OPEN = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0, "max_proposals": 1000}


def scene(h: int = 72, w: int = 100, seed: int = 0) -> Image:
    rng = np.random.default_rng(seed)
    px = np.full((h, w, 3), 30, dtype=np.uint8)
    px[10:40, 15:60] = (220, 40, 40)
    px[45:68, 60:95] = (40, 200, 60)
    px += rng.integers(0, 10, px.shape, dtype=np.uint8)
    return Image.from_array(px)


def tiny_tool(settings: dict[str, Any] | None = None, **options: object) -> SamPropose:
    """The tool on the tiny SAM (random weights, seed 0); ``settings`` override ToolSettings fields."""
    values: dict[str, Any] = {"weights": "random", "seed": 0, **(settings or {})}
    values["options"] = {"sam_propose": {"config": "tiny", **options}}
    return SamPropose(ToolSettings(**values))


def propose(tool: SamPropose, image: Image, **params: object) -> Any:
    return anyio.run(tool, Workspace(image, "the red box"), SamProposeParams(**params))


def best_match_ious(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each ``(H, W)`` mask of ``reference``, its best IoU with any mask of ``other``."""
    if len(reference) == 0 or len(other) == 0:
        return np.zeros(len(reference))
    a = reference.reshape(len(reference), -1).astype(np.float32)
    b = other.reshape(len(other), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return (inter / np.maximum(union, 1.0)).max(axis=1)
