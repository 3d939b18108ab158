"""The one renderer: masks, outlines and labelled candidates, for people and for the VLM.

``refseg segment`` and ``bench cases`` draw :func:`overlay` (the chosen mask tinted, the top
candidates outlined); the VLM refiner and the ``agent`` controller show the model
:func:`outline_candidates` (candidates outlined and labelled, nothing tinted). Both use one
palette, :data:`PALETTE`, whose colour names are what prompts may tell the VLM.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from tools.errors import InputError
from tools.images import downscale, resize_mask

RGB = tuple[int, int, int]


class Colour(NamedTuple):
    """A palette entry: the name prompts use, and its RGB value."""

    name: str
    rgb: RGB


# Candidate k (best first) is outlined in PALETTE[k % len(PALETTE)]. No green or magenta:
# those mark the chosen mask in overlays.
PALETTE: tuple[Colour, ...] = (
    Colour("red", (255, 40, 40)),
    Colour("blue", (40, 110, 255)),
    Colour("yellow", (255, 200, 0)),
    Colour("cyan", (0, 210, 230)),
    Colour("purple", (160, 80, 255)),
)
CHOSEN_FILL: RGB = (0, 220, 90)  # the chosen mask is tinted green ...
CHOSEN_EDGE: RGB = (255, 0, 255)  # ... and edged in magenta: readable on the tint and on any colour
WARNING_FILL: RGB = (200, 0, 0)  # the band of a warning every copy of the picture must carry
TINT = 0.45
LABEL_PAD = 2


def palette_colour(rank: int) -> Colour:
    """The colour of the candidate at ``rank`` (0 = best)."""
    return PALETTE[rank % len(PALETTE)]


def line_width(height: int, width: int) -> int:
    """Outline width in pixels for an image of that size."""
    return max(2, round(max(height, width) / 300))


def mask_edges(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` of its border (the image border counts as one)."""
    inner = np.pad(mask, 1)
    for _ in range(max(1, width)):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner[1:-1, 1:-1]


def save_mask_png(mask: np.ndarray | None, size: tuple[int, int], path: Path) -> None:
    """A ``uint8`` PNG (0/255) of the mask at ``size = (H, W)``; all zeros when ``None``."""
    arr = np.zeros(size, dtype=np.uint8) if mask is None else mask.astype(np.uint8) * 255
    PILImage.fromarray(arr, mode="L").save(path)


def _font(height: int, width: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, round(max(height, width) / 40)))


def _text_colour(background: RGB) -> RGB:
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _draw_outlines(out: np.ndarray, masks: Sequence[np.ndarray], width: int) -> None:
    """Outline each mask in its palette colour, worst first so the best stays on top."""
    for rank in reversed(range(len(masks))):
        out[mask_edges(masks[rank], width)] = palette_colour(rank).rgb


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_box(mask_box: Box, size: tuple[float, float], image: tuple[int, int], clear: Sequence[Box]) -> Box:
    """Where a label of ``size`` (w, h, padding included) goes beside its mask's box: above it,
    else below, right, left (the first inside the image that covers none of ``clear``: the
    chosen mask stays visible), else inside the box's top-left corner."""
    (x0, y0, x1, y1), (w, h), (width, height) = mask_box, size, image
    spots = ((x0, y0 - h - 1), (x0, y1 + 2), (x1 + 2, y0), (x0 - w - 2, y0))
    boxes = [(x, y, x + w, y + h) for x, y in spots]
    inside = [b for b in boxes if b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height]
    for box in inside:
        if not any(_overlaps(box, c) for c in clear):
            return box
    x, y = min(max(x0, 0.0), max(width - w, 0.0)), min(max(y0, 0.0), max(height - h, 0.0))
    return inside[0] if inside else (x, y, x + w, y + h)


def _mask_box(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1) if ys.size else None


def _draw_labels(
    img: PILImage.Image, masks: Sequence[np.ndarray], labels: Sequence[str], keep_clear: Box | None = None
) -> None:
    """Each label on a box of its mask's colour beside the mask (never over it, nor over
    ``keep_clear`` where there is room elsewhere)."""
    draw = ImageDraw.Draw(img)
    font = _font(img.height, img.width)
    for rank in reversed(range(len(masks))):
        box = _mask_box(masks[rank])
        if box is None or not labels[rank]:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), labels[rank], font=font)
        size = (right - left + 2 * LABEL_PAD, bottom - top + 2 * LABEL_PAD)
        clear = [box] if keep_clear is None else [box, keep_clear]
        bx, by, bx1, by1 = _label_box(box, size, (img.width, img.height), clear)
        colour = palette_colour(rank).rgb
        draw.rectangle((bx, by, bx1 - 1, by1 - 1), fill=colour)
        draw.text(
            (bx + LABEL_PAD - left, by + LABEL_PAD - top), labels[rank], fill=_text_colour(colour), font=font
        )


def _draw_title(img: PILImage.Image, title: str) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(img.height, img.width)
    _, _, right, bottom = draw.textbbox((5, 2), title, font=font)
    draw.rectangle((0, 0, right + 5, bottom + 2), fill=(0, 0, 0))
    draw.text((5, 2), title, fill=(255, 255, 255), font=font)


def _draw_warning(img: PILImage.Image, warning: str) -> None:
    """``warning`` in white on a red band across the bottom of the picture."""
    draw = ImageDraw.Draw(img)
    font = _font(img.height, img.width)
    left, top, _, bottom = draw.textbbox((0, 0), warning, font=font)
    band = bottom - top + 4 * LABEL_PAD
    draw.rectangle((0, img.height - band, img.width, img.height), fill=WARNING_FILL)
    draw.text((5 - left, img.height - band + 2 * LABEL_PAD - top), warning, fill=(255, 255, 255), font=font)


def overlay(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    candidates: Sequence[tuple[np.ndarray, str]] = (),
    title: str = "",
    warning: str = "",
) -> PILImage.Image:
    """The image with the chosen mask tinted and the candidates outlined and labelled.

    Args:
        pixels: ``(H, W, 3) uint8``.
        mask: the chosen ``(H, W) bool`` mask, or ``None``.
        candidates: ``(mask, label)`` pairs, best first, outlined in :data:`PALETTE` order;
            labels go beside their masks, clear of the chosen one where there is room.
        title: text drawn in the top-left corner.
        warning: text on a red band across the bottom (e.g. that the weights are random).
    """
    out = pixels.astype(np.float32)
    width = line_width(*pixels.shape[:2])
    chosen_box = None
    if mask is not None and mask.any():
        out[mask] = (1 - TINT) * out[mask] + TINT * np.array(CHOSEN_FILL, dtype=np.float32)
        out[mask_edges(mask, width)] = CHOSEN_EDGE
        chosen_box = _mask_box(mask)
    masks = [m for m, _ in candidates]
    _draw_outlines(out, masks, width)
    img = PILImage.fromarray(out.clip(0, 255).astype(np.uint8))
    _draw_labels(img, masks, [label for _, label in candidates], chosen_box)
    if title:
        _draw_title(img, title)
    if warning:
        _draw_warning(img, warning)
    return img


def outline_candidates(
    pixels: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    max_side: int | None = None,
) -> np.ndarray:
    """The image (downscaled to ``max_side``) with ``masks`` outlined and labelled, best first.

    Masks are resized to the drawn image, so outlines stay crisp however small it is.
    Candidate ``k`` is drawn in ``palette_colour(k)``.
    """
    out = downscale(pixels, max_side) if max_side is not None else pixels
    out = np.array(out, dtype=np.uint8)  # a writable copy
    size = (int(out.shape[0]), int(out.shape[1]))
    sized = [resize_mask(m, size) for m in masks]
    _draw_outlines(out, sized, line_width(*size))
    img = PILImage.fromarray(out)
    _draw_labels(img, sized, labels)
    return np.asarray(img)


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


def image_data_url(pixels: np.ndarray, max_side: int = 768, quality: int = 85) -> str:
    """A ``data:image/jpeg;base64,...`` URL of an RGB (or grey) image, longest side <= max_side.

    Raises:
        InputError: not an ``(H, W, 3)`` or ``(H, W)`` uint8 array.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InputError(
            f"image_data_url needs (H, W, 3) or (H, W) uint8 pixels, got {arr.shape} {arr.dtype}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError("image_data_url: the image has no pixels")
    img = PILImage.fromarray(arr).convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
