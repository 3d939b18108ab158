"""Pictures of results: mask PNGs, overlays with the top candidates, side-by-side panels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

CANDIDATE_COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (160, 80, 255), (0, 200, 120)]
FILL = np.array([0, 220, 90], dtype=np.float32)
CHOSEN_EDGE = (255, 0, 255)  # magenta: readable on the tint and on any shape colour


def mask_edges(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` of its border."""
    inner = mask.copy()
    for _ in range(max(1, width)):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def save_mask_png(mask: np.ndarray | None, size: tuple[int, int], path: Path) -> None:
    """A ``uint8`` PNG (0/255) of the mask at ``size = (H, W)``; all zeros when ``None``."""
    arr = np.zeros(size, dtype=np.uint8) if mask is None else mask.astype(np.uint8) * 255
    PILImage.fromarray(arr, mode="L").save(path)


def overlay(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    candidates: Sequence[tuple[np.ndarray, str]] = (),
    title: str = "",
) -> PILImage.Image:
    """The image with the chosen mask tinted and other candidates outlined and labelled.

    Args:
        pixels: ``(H, W, 3) uint8``.
        mask: the chosen ``(H, W) bool`` mask, or ``None``.
        candidates: ``(mask, label)`` pairs drawn as coloured contours.
        title: text drawn in the top-left corner.
    """
    out = pixels.astype(np.float32)
    line = max(2, round(max(pixels.shape[:2]) / 400))
    if mask is not None and mask.any():
        out[mask] = 0.55 * out[mask] + 0.45 * FILL
        out[mask_edges(mask, line)] = CHOSEN_EDGE
    labels = []
    for i, (cand, label) in enumerate(candidates):
        colour = CANDIDATE_COLOURS[i % len(CANDIDATE_COLOURS)]
        out[mask_edges(cand, line)] = colour
        ys, xs = np.nonzero(cand)
        if ys.size:
            labels.append((int(xs.min()), int(ys.min()), label, colour))
    img = PILImage.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for x, y, label, colour in labels:
        draw.rectangle([x, y, x + 7 * len(label) + 6, y + 14], fill=(0, 0, 0))
        draw.text((x + 3, y + 1), label, fill=colour)
    if title:
        draw.rectangle([0, 0, 7 * len(title) + 10, 16], fill=(0, 0, 0))
        draw.text((5, 2), title, fill=(255, 255, 255))
    return img


def side_by_side(panels: Sequence[PILImage.Image], gap: int = 8) -> PILImage.Image:
    """Panels of equal height in a row, on white."""
    height = max(p.height for p in panels)
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = PILImage.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + gap
    return canvas
