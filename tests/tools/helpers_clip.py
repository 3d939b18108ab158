"""Shared helpers for CLIP tests: a tiny real open_clip model and a synthetic scene."""

from __future__ import annotations

import numpy as np

from tools.base import ToolSettings, Workspace
from tools.clip_loading import register_tiny_clip
from tools.types import Image, Proposals


def tiny_clip_settings(**overrides: object) -> ToolSettings:
    """ToolSettings for the registered tiny CLIP with seeded random weights."""
    values: dict[str, object] = {"weights": "random", "clip_model": register_tiny_clip(), "seed": 0}
    values.update(overrides)
    return ToolSettings(**values)  # type: ignore[arg-type]


def scene(h: int = 96, w: int = 128, empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A textured image with three flat rectangles and their exact masks ``(N, H, W)``."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], axis=-1)
    image = (image + rng.integers(0, 40, image.shape)).clip(0, 255).astype(np.uint8)
    rects = [
        ((10, 8, 40, 50), (220, 30, 30)),
        ((50, 60, 90, 120), (30, 60, 220)),
        ((5, 70, 30, 95), (240, 220, 30)),
    ]
    masks = np.zeros((len(rects) + int(empty), h, w), dtype=bool)
    for i, ((y0, x0, y1, x1), color) in enumerate(rects):
        image[y0:y1, x0:x1] = color
        masks[i, y0:y1, x0:x1] = True
    return image, masks


def workspace(query: str = "the red box", empty: bool = False) -> Workspace:
    """A workspace holding the scene and its proposals."""
    pixels, masks = scene(empty=empty)
    ws = Workspace(image=Image.from_array(pixels), expression=query)
    ws.proposals = Proposals.from_masks(masks, source="test")
    return ws
