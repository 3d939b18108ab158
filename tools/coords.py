"""Coordinates between the frames of one image: the one place that maps them.

An episode sees one picture at several sizes:

- ``original``: the input image;
- ``working``: the copy the tools see (:func:`tools.images.working_copy`, longest side at
  most ``ToolSettings.max_side``); masks and proposal boxes are in its pixels;
- ``view``: the picture a VLM was shown (:func:`tools.images.downscale` of the working copy
  to the controller's side, see :data:`agent.agent_prompts.IMAGE_SIDE`);
- ``sam``: SAM's input frame (``ResizeLongestSide`` to the encoder's size, 1024 for the
  official models).

They are the same picture scaled, so a point maps by scaling x by the ratio of widths and
y by the ratio of heights. Coordinates are continuous: pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)`` and a box ``[x0, y0, x1, y1]`` covers the pixels whose centres lie
inside it (so an object's tight box is ``[x, y, x + w, y + h]``). A VLM answers in its own
convention (:data:`UNITS`): pixels of its view (Qwen2.5-VL, which sees the view resized onto
its 28-pixel grid: :func:`smart_resize`, so the view is sent on that grid), 0-1000 normalised
(Qwen3-VL, InternVL), 0-1000 with y first (Gemini), 0-1 or percent (Molmo's points): a
:class:`View` knows which, and maps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from tools.errors import ToolError
from tools.images import downscaled_size

Units = Literal["pixels", "norm1000", "norm1000-yx", "norm1", "percent"]
UNITS: tuple[Units, ...] = ("pixels", "norm1000", "norm1000-yx", "norm1", "percent")
NORM = 1000.0
# The largest coordinate of each normalised convention (pixels have the picture's own size).
SCALES: dict[str, float] = {"norm1000": NORM, "norm1000-yx": NORM, "norm1": 1.0, "percent": 100.0}
SAM_SIDE = 1024
# Qwen2-VL / Qwen2.5-VL's image processor: 14-pixel patches merged 2x2, and its pixel budget
# (min_pixels 56*56; max_pixels 16384*28*28, the models' preprocessor_config.json).
GRID = 28
MIN_PIXELS = 56 * 56
MAX_PIXELS = 16384 * 28 * 28


@dataclass(frozen=True)
class Frame:
    """A size the image is seen at: ``width`` x ``height`` pixels; ``name`` says which."""

    width: int
    height: int
    name: str = ""

    @classmethod
    def from_hw(cls, size: tuple[int, int], name: str = "") -> Frame:
        """The frame of an ``(H, W)`` size (the project's array order)."""
        return cls(int(size[1]), int(size[0]), name)

    @property
    def wh(self) -> tuple[int, int]:
        return self.width, self.height

    def downscaled(self, max_side: int, name: str = "") -> Frame:
        """This frame after :func:`tools.images.downscale` to ``max_side``."""
        h, w = downscaled_size((self.height, self.width), max_side)
        return Frame(w, h, name)

    def on_grid(
        self, factor: int = GRID, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS, name: str = ""
    ) -> Frame:
        """This frame after :func:`smart_resize` (Qwen2.5-VL's processor) onto a ``factor`` grid."""
        h, w = smart_resize(self.height, self.width, factor, min_pixels, max_pixels)
        return Frame(w, h, name or self.name)

    def sam(self, long_side: int = SAM_SIDE) -> Frame:
        """SAM's input frame: ``ResizeLongestSide(long_side)`` of this one."""
        scale = long_side / max(self.width, self.height)
        return Frame(int(self.width * scale + 0.5), int(self.height * scale + 0.5), "sam")


def map_points(xy: ArrayLike, src: Frame, dst: Frame) -> np.ndarray:
    """``(N, 2)`` points ``(x, y)`` in ``src`` as ``float64`` points in ``dst``."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return pts * np.array([dst.width / src.width, dst.height / src.height])


def map_box(box: ArrayLike, src: Frame, dst: Frame) -> np.ndarray:
    """A box ``[x0, y0, x1, y1]`` in ``src`` as a ``(4,) float64`` box in ``dst``."""
    return map_points(np.asarray(box, dtype=np.float64).reshape(2, 2), src, dst).reshape(4)


def box_iou(a: ArrayLike, b: ArrayLike) -> float:
    """IoU of two ``[x0, y0, x1, y1]`` boxes (0 when either is empty)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_box(mask: np.ndarray) -> np.ndarray:
    """The tight continuous box ``[x0, y0, x1 + 1, y1 + 1]`` of an ``(H, W) bool`` mask (zeros if empty)."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not ys.size:
        return np.zeros(4)
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


@dataclass(frozen=True)
class View:
    """The picture a VLM was shown and the convention it gives coordinates in.

    Attributes:
        frame: the shown picture's size.
        units: ``pixels`` of that picture; ``norm1000`` (0-1000 on both axes, Qwen3-VL,
            InternVL); ``norm1000-yx`` (0-1000, y first: Gemini's ``box_2d`` ``[ymin, xmin,
            ymax, xmax]`` and points ``[y, x]``); ``norm1`` (0-1); ``percent`` (0-100, Molmo).

    Coordinates a model gave (``box_to``, ``points_to``, the checks) are in this
    convention's order; coordinates it is told (``box_from``, ``points_from``) come out in it.
    """

    frame: Frame
    units: Units = "pixels"

    @property
    def y_first(self) -> bool:
        """Boxes are ``[ymin, xmin, ymax, xmax]`` and points ``[y, x]``."""
        return self.units == "norm1000-yx"

    @property
    def bounds(self) -> tuple[float, float]:
        """The largest x and y a point in these units can have."""
        scale = SCALES.get(self.units)
        if scale is not None:
            return scale, scale
        return float(self.frame.width), float(self.frame.height)

    @property
    def unit_frame(self) -> Frame:
        """The frame whose pixels are these units (the shown picture, or a scale x scale grid)."""
        scale = SCALES.get(self.units)
        return self.frame if scale is None else Frame(int(scale), int(scale), self.units)

    @property
    def box_form(self) -> str:
        """How a box is written in this convention."""
        return "[ymin, xmin, ymax, xmax]" if self.y_first else "[x0, y0, x1, y1]"

    @property
    def point_form(self) -> str:
        """How a point is written in this convention."""
        return "[y, x]" if self.y_first else "[x, y]"

    def describe(self) -> str:
        """How to give coordinates, for prompts and error messages."""
        w, h = self.frame.wh
        shown = f"the {w}x{h} image you were shown"
        if self.units == "pixels":
            return f"pixels of {shown} ((0, 0) top-left, ({w}, {h}) bottom-right)"
        top = {"norm1000": "1000", "norm1000-yx": "1000", "norm1": "1", "percent": "100"}[self.units]
        order = ", y first: boxes [ymin, xmin, ymax, xmax], points [y, x]" if self.y_first else ""
        return (
            f"coordinates normalised to 0-{top} on both axes of {shown} "
            f"(0 is the top or left edge, {top} the bottom or right edge{order})"
        )

    def _xy(self, values: np.ndarray) -> np.ndarray:
        """Values in this convention's order as ``(x, y)`` pairs, or back (swapping is its own inverse)."""
        pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        return pairs[:, ::-1].copy() if self.y_first else pairs

    def points_to(self, xy: ArrayLike, dst: Frame) -> np.ndarray:
        """Points in this convention as ``(x, y)`` points in ``dst``."""
        return map_points(self._xy(np.asarray(xy)), self.unit_frame, dst)

    def points_from(self, xy: ArrayLike, src: Frame) -> np.ndarray:
        """``(x, y)`` points in ``src`` as points in this convention."""
        return self._xy(map_points(xy, src, self.unit_frame))

    def box_to(self, box: ArrayLike, dst: Frame) -> np.ndarray:
        """A box in this convention as ``[x0, y0, x1, y1]`` in ``dst``."""
        return map_box(self._xy(np.asarray(box)).reshape(4), self.unit_frame, dst)

    def box_from(self, box: ArrayLike, src: Frame) -> np.ndarray:
        """A box ``[x0, y0, x1, y1]`` in ``src`` as a box in this convention."""
        return self._xy(map_box(box, src, self.unit_frame)).reshape(4)

    def check_box(self, box: ArrayLike) -> np.ndarray:
        """A box the model gave, clipped to the picture (in the order it was given).

        Raises:
            ToolError: not four finite numbers, inverted, zero area, or wholly outside the
                picture (the message says what to send instead).
        """
        given = _finite(box, (4,), "box")
        b = self._xy(given).reshape(4)
        limit_x, limit_y = self.bounds
        if b[2] <= b[0] or b[3] <= b[1]:
            raise ToolError(
                f"box {_fmt(given)} is inverted or has zero area: give {self.box_form} with the "
                f"first corner above and left of the second, in {self.describe()}"
            )
        clipped = np.clip(b, 0.0, [limit_x, limit_y, limit_x, limit_y])
        if clipped[2] - clipped[0] < 1e-6 or clipped[3] - clipped[1] < 1e-6:
            raise ToolError(f"box {_fmt(given)} lies outside the image; give it in {self.describe()}")
        return self._xy(clipped).reshape(4)

    def check_points(self, points: ArrayLike) -> np.ndarray:
        """Points the model gave, ``(N, 2)`` in the order they were given.

        Raises:
            ToolError: not finite pairs, or a point outside the picture.
        """
        given = _finite(points, (-1, 2), "points")
        pts = self._xy(given)
        limit_x, limit_y = self.bounds
        outside = (pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > limit_x) | (pts[:, 1] > limit_y)
        if outside.any():
            bad = given[int(np.argmax(outside))]
            where = f"give points {self.point_form} in {self.describe()}"
            raise ToolError(f"point {_fmt(bad)} lies outside the image; {where}")
        return given


def smart_resize(
    height: int, width: int, factor: int = GRID, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """``(H, W)`` Qwen2-VL / Qwen2.5-VL's processor resizes an image to before the model sees it.

    Each side is rounded to a multiple of ``factor`` (patch 14 x merge 2 = 28), Python's
    ``round`` (halves to even, as the processor does); when that leaves more than
    ``max_pixels`` (fewer than ``min_pixels``) both sides shrink (grow) by one factor that
    keeps the aspect ratio, then round down (up) to the grid. Qwen2.5-VL answers boxes in
    pixels of this frame.

    Raises:
        ValueError: a side under 10 pixels, or an aspect ratio over 200 (the processor
            refuses these too).
    """
    if height < 10 or width < 10:
        raise ValueError(f"an image of {width}x{height} is too small for a {factor}-pixel grid")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"an image of {width}x{height} has an aspect ratio over 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _finite(values: ArrayLike, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        raise ToolError(f"{what} must be numbers, e.g. [10, 20, 110, 90]; got {values!r:.80}") from None
    if not np.isfinite(arr).all():
        raise ToolError(f"{what} {_fmt(arr)} has a value that is not a finite number")
    return arr


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(values).ravel()) + "]"
