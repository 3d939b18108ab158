"""``region_prompt``: the offline twin of ``sam_prompt`` (a box or points -> the region under them).

No weights: a region is a connected set of pixels within ``color_tolerance`` of a seed
colour. Foreground points are seeds themselves; a box is searched with seeds on a grid over
its middle, and the region whose own tight box agrees best with the prompt box wins; a
region counts half when it does not cover the box's centre (a ring around something is not
the thing) and half when it touches the search window's edge (as background does). Background
points remove the regions under them. The tolerance is tighter than ``region_propose``'s,
so an object the proposer merged with a look-alike neighbour comes out on its own when
the VLM points at it: the whole grounded path runs and is measured without models.

Registered through the ``refseg.tools`` entry-point group, like any third-party plugin, and
named by ``region_propose`` as its prompt tool.
"""

from __future__ import annotations

import anyio.to_thread
import numpy as np
from scipy import ndimage

from tools.base import ToolSettings, Workspace
from tools.coords import box_iou, mask_box
from tools.offline.declarations import REGION_PROMPT
from tools.offline.region_propose import denoise
from tools.prompting import Prompt, PromptTool

COLOR_TOLERANCE = 18.0  # RGB distance; region_propose merges within 40
WINDOW_MARGIN = 0.25  # the box is searched with this fraction of its size around it
SEED_GRID = 5  # seeds per side over the middle of the box
EDGE_PENALTY = 0.5
OFF_CENTRE_PENALTY = 0.5


def region_at(pixels: np.ndarray, x: int, y: int) -> np.ndarray:
    """The connected pixels within tolerance of the colour at ``(x, y)`` (median of 3x3)."""
    h, w = pixels.shape[:2]
    patch = pixels[max(y - 1, 0) : min(y + 2, h), max(x - 1, 0) : min(x + 2, w)].reshape(-1, 3)
    near = np.linalg.norm(pixels - np.median(patch, axis=0), axis=2) <= COLOR_TOLERANCE
    if not near[y, x]:
        return np.zeros_like(near)
    labels, _ = ndimage.label(near)
    return np.asarray(labels == labels[y, x])


def _window(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """The search window ``(x0, y0, x1, y1)``: the box grown by ``WINDOW_MARGIN`` of its size."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    return (
        max(int(np.floor(box[0] - WINDOW_MARGIN * bw)), 0),
        max(int(np.floor(box[1] - WINDOW_MARGIN * bh)), 0),
        min(int(np.ceil(box[2] + WINDOW_MARGIN * bw)), w),
        min(int(np.ceil(box[3] + WINDOW_MARGIN * bh)), h),
    )


def _touches_edge(region: np.ndarray) -> bool:
    return bool(region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any())


def _best_in_box(pixels: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
    """The region (in ``pixels``, the search window) whose tight box agrees best with ``box``."""
    h, w = pixels.shape[:2]
    best, best_score = np.zeros((h, w), dtype=bool), 0.0
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    centre_x, centre_y = int(np.clip(cx, 0, w - 1)), int(np.clip(cy, 0, h - 1))
    spread = np.linspace(-0.3, 0.3, SEED_GRID)
    tried = np.zeros((h, w), dtype=bool)
    for fy in spread:
        for fx in spread:
            x = int(np.clip(cx + fx * (box[2] - box[0]), 0, w - 1))
            y = int(np.clip(cy + fy * (box[3] - box[1]), 0, h - 1))
            if tried[y, x]:
                continue  # already inside a region found from another seed
            region = region_at(pixels, x, y)
            tried |= region
            centre = 1.0 if region[centre_y, centre_x] else OFF_CENTRE_PENALTY
            edge = EDGE_PENALTY if _touches_edge(region) else 1.0
            score = box_iou(mask_box(region), box) * centre * edge
            if score > best_score:
                best, best_score = region, score
    return best, best_score


def draw_region(pixels: np.ndarray, prompt: Prompt) -> tuple[np.ndarray, float]:
    """The region under ``prompt`` (``(H, W) bool``) and a score in [0, 1]."""
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = _window(prompt.box, h, w) if prompt.box is not None else (0, 0, w, h)
    crop = pixels[y0:y1, x0:x1]
    shift = np.array([x0, y0], dtype=np.float64)
    if prompt.points is None or prompt.labels is None:
        assert prompt.box is not None
        found, score = _best_in_box(crop, prompt.box - np.tile(shift, 2))
    else:
        found = np.zeros(crop.shape[:2], dtype=bool)
        for (x, y), label in zip(prompt.points - shift, prompt.labels, strict=True):
            xi, yi = int(np.clip(x, 0, x1 - x0 - 1)), int(np.clip(y, 0, y1 - y0 - 1))
            region = region_at(crop, xi, yi)
            found = found | region if label == 1 else found & ~region
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = found
    if prompt.points is not None:
        score = prompt.agreement(mask)
    return mask, score


class RegionPrompt(PromptTool):
    """The region under a box or points, as a new candidate (the offline ``sam_prompt``)."""

    declaration = REGION_PROMPT

    def __init__(self, settings: ToolSettings | None = None):
        super().__init__(settings)
        self.computes = 0  # real computations (cache misses), for tests and cost accounting

    def fingerprint(self) -> str:
        return "none"

    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        self.computes += 1
        pixels = denoise(ws.image.pixels).astype(np.float64)
        mask, score = await anyio.to_thread.run_sync(draw_region, pixels, prompt)
        return mask[None], np.array([score], dtype=np.float32)
