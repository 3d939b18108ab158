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
inside it (so an object's tight box is ``[x, y, x + w, y + h]``). A VLM answers in pixels of
its view (``pixels``, Qwen2.5-VL) or in 0-1000 normalised coordinates of it (``norm1000``,
Qwen2-VL and others): a :class:`View` knows which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from tools.errors import ToolError
from tools.images import downscaled_size

Units = Literal["pixels", "norm1000"]
UNITS: tuple[Units, ...] = ("pixels", "norm1000")
NORM = 1000.0
SAM_SIDE = 1024


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
    """The picture a VLM was shown and the units it answers in.

    Attributes:
        frame: the shown picture's size.
        units: ``pixels`` of that picture, or ``norm1000`` (0..1000 on both axes).
    """

    frame: Frame
    units: Units = "pixels"

    @property
    def bounds(self) -> tuple[float, float]:
        """The largest x and y a point in these units can have."""
        if self.units == "norm1000":
            return NORM, NORM
        return float(self.frame.width), float(self.frame.height)

    @property
    def unit_frame(self) -> Frame:
        """The frame whose pixels are these units (the shown picture, or a 1000x1000 grid)."""
        return Frame(int(NORM), int(NORM), "norm1000") if self.units == "norm1000" else self.frame

    def describe(self) -> str:
        """How to give coordinates, for prompts and error messages."""
        w, h = self.frame.wh
        if self.units == "norm1000":
            return (
                f"coordinates normalised to 0-1000 on both axes of the {w}x{h} image you were shown "
                "((0, 0) top-left, (1000, 1000) bottom-right)"
            )
        return f"pixels of the {w}x{h} image you were shown ((0, 0) top-left, ({w}, {h}) bottom-right)"

    def points_to(self, xy: ArrayLike, dst: Frame) -> np.ndarray:
        """Points in these units as points in ``dst``."""
        return map_points(xy, self.unit_frame, dst)

    def points_from(self, xy: ArrayLike, src: Frame) -> np.ndarray:
        """Points in ``src`` as points in these units."""
        return map_points(xy, src, self.unit_frame)

    def box_to(self, box: ArrayLike, dst: Frame) -> np.ndarray:
        return map_box(box, self.unit_frame, dst)

    def box_from(self, box: ArrayLike, src: Frame) -> np.ndarray:
        return map_box(box, src, self.unit_frame)

    def check_box(self, box: ArrayLike) -> np.ndarray:
        """A box the model gave, clipped to the picture.

        Raises:
            ToolError: not four finite numbers, inverted, zero area, or wholly outside the
                picture (the message says what to send instead).
        """
        b = _finite(box, (4,), "box")
        limit_x, limit_y = self.bounds
        if b[2] <= b[0] or b[3] <= b[1]:
            raise ToolError(
                f"box {_fmt(b)} is inverted or has zero area: give [x0, y0, x1, y1] with x0 < x1 "
                f"and y0 < y1, in {self.describe()}"
            )
        clipped = np.clip(b, 0.0, [limit_x, limit_y, limit_x, limit_y])
        if clipped[2] - clipped[0] < 1e-6 or clipped[3] - clipped[1] < 1e-6:
            raise ToolError(f"box {_fmt(b)} lies outside the image; give it in {self.describe()}")
        return clipped

    def check_points(self, points: ArrayLike) -> np.ndarray:
        """Points the model gave, ``(N, 2)``.

        Raises:
            ToolError: not finite ``[x, y]`` pairs, or a point outside the picture.
        """
        pts = _finite(points, (-1, 2), "points")
        limit_x, limit_y = self.bounds
        outside = (pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > limit_x) | (pts[:, 1] > limit_y)
        if outside.any():
            bad = pts[int(np.argmax(outside))]
            raise ToolError(f"point {_fmt(bad)} lies outside the image; give points in {self.describe()}")
        return pts


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
