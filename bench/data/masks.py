"""Ground truth a data set gives as drawings (COCO polygons or RLE, several objects, labelled
polygons with ignore regions), drawn at the image's size when an example is scored.

A :class:`RasterMask` is an :class:`bench.data.examples.Example`'s ``mask_ref`` (or
``ignore_ref``) that needs the image's height and width: the evaluation passes the decoded
image's size, so nothing is drawn (or decoded) while a data set is streamed, and the objects
are small, picklable data (what a Ray worker receives).

- :class:`CocoMask`: the union of COCO segmentations (one per object), each rasterised
  exactly as ``pycocotools.coco.COCO.annToRLE`` does (polygons: ``frPyObjects`` -> ``merge``;
  uncompressed RLE: ``frPyObjects``; compressed RLE as it is), then ``decode``; no object is
  an empty target.
- :class:`LabelledPolygons`: ReasonSeg's ``shapes`` (polygons labelled ``target`` or
  ``ignore``), drawn as LISA's reference code draws them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from bench.data_errors import DatasetError

IGNORE_VALUE = 255  # ReasonSeg's ignore label in the drawn label map (as LISA's code uses it)


class RasterMask(ABC):
    """A mask drawn at the image's size when its example is scored."""

    @abstractmethod
    def draw(self, height: int, width: int) -> np.ndarray:
        """The ``(height, width) bool`` mask.

        Raises:
            DatasetError: the drawing cannot be made at that size (a corrupt annotation, or
                one made for an image of another size).
        """


def segmentation_problem(segmentation: Any) -> str | None:
    """Why a COCO ``segmentation`` (polygons, or RLE) cannot be drawn, or ``None``."""
    if isinstance(segmentation, Mapping):
        counts, size = segmentation.get("counts"), segmentation.get("size")
        if counts is None or not isinstance(size, Sequence) or len(size) != 2:
            return "the RLE has no counts and [H, W] size"
        return None
    if not isinstance(segmentation, Sequence) or isinstance(segmentation, str) or not segmentation:
        return "the segmentation is neither polygons nor RLE"
    for polygon in segmentation:
        if not isinstance(polygon, Sequence) or isinstance(polygon, str):
            return "a polygon is not a list of numbers"
        if len(polygon) < 6 or len(polygon) % 2:
            return f"a polygon has {len(polygon)} coordinates (needs x, y pairs for at least 3 points)"
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in polygon):
            return "a polygon has a coordinate that is not a finite number"
    return None


def as_polygons(segmentation: Any) -> Any:
    """A flat polygon ``[x1, y1, x2, y2, ...]`` as COCO's list of polygons; anything else as it is."""
    if isinstance(segmentation, Sequence) and segmentation and isinstance(segmentation[0], int | float):
        return [list(segmentation)]
    return segmentation


def coco_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """One object's COCO RLE at ``height x width``, as ``COCO.annToRLE`` makes it.

    Raises:
        DatasetError: the segmentation cannot be drawn.
    """
    from pycocotools import mask as mask_utils

    segmentation = as_polygons(segmentation)
    problem = segmentation_problem(segmentation)
    if problem is not None:
        raise DatasetError(problem)
    try:
        if isinstance(segmentation, Mapping):
            if [int(v) for v in segmentation["size"]] != [height, width]:
                h, w = segmentation["size"]
                raise DatasetError(f"the RLE is {h}x{w} but the image is {height}x{width}")
            if isinstance(segmentation["counts"], list):  # uncompressed: compress it
                return dict(mask_utils.frPyObjects(dict(segmentation), height, width))
            counts = segmentation["counts"]
            return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
        polygons = [[float(v) for v in p] for p in segmentation]
        return dict(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)))
    except DatasetError:
        raise
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt counts
        raise DatasetError(f"the segmentation cannot be drawn ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class CocoMask(RasterMask):
    """The union of COCO segmentations, one per object (none: an empty target).

    Attributes:
        segmentations: each object's ``segmentation`` (polygons ``[[x1, y1, ...], ...]``, a
            flat polygon, or RLE ``{counts, size}``).
        size: ``(height, width)`` the annotation was made for, when the data set says so
            (COCO's ``images``): drawing at another size is an error, not a silent stretch.
    """

    segmentations: tuple[Any, ...] = ()
    size: tuple[int, int] | None = None

    def draw(self, height: int, width: int) -> np.ndarray:
        if self.size is not None and tuple(self.size) != (height, width):
            h, w = self.size
            raise DatasetError(f"the annotation is for a {h}x{w} image but the image is {height}x{width}")
        if not self.segmentations:
            return np.zeros((height, width), dtype=bool)
        from pycocotools import mask as mask_utils

        rles = [coco_rle(s, height, width) for s in self.segmentations]
        merged = rles[0] if len(rles) == 1 else mask_utils.merge(rles)
        return np.asarray(mask_utils.decode(merged), dtype=bool)


Point = tuple[float, float]


def _polygon_layer(points: Sequence[Point], height: int, width: int) -> PILImage.Image:
    """One polygon filled with its 1-pixel outline, corners truncated to whole pixels (LISA's
    ``cv2.fillPoly`` + ``cv2.polylines`` on ``int32`` points)."""
    layer = PILImage.new("L", (width, height), 0)
    xy = [(int(x), int(y)) for x, y in points]
    ImageDraw.Draw(layer).polygon(xy, fill=1, outline=1)
    return layer


@dataclass(frozen=True)
class LabelledPolygons(RasterMask):
    """One layer of ReasonSeg's ``shapes``: the ``target`` pixels, or the ``ignore`` ones.

    Every shape is drawn into one label map, the largest first, so where shapes overlap the
    smaller one wins (an ``ignore`` hole in a target, a target inside an ignored region); a
    label containing ``ignore`` is ignored, ``flag`` shapes are skipped (deprecated
    annotations), any other label is target: as LISA's ``get_mask_from_json``.

    Attributes:
        shapes: ``(label, points)`` per shape, points ``(x, y)`` in pixels.
        layer: ``target`` or ``ignore``.
    """

    shapes: tuple[tuple[str, tuple[Point, ...]], ...]
    layer: str = "target"

    def draw(self, height: int, width: int) -> np.ndarray:
        labels = np.zeros((height, width), dtype=np.uint8)
        drawn = []
        for label, points in self.shapes:
            if label.lower() == "flag":
                continue
            layer = np.asarray(_polygon_layer(points, height, width), dtype=bool)
            drawn.append((int(layer.sum()), label, layer))
        for _area, label, layer in sorted(drawn, key=lambda d: -d[0]):  # stable: ties keep file order
            labels[layer] = IGNORE_VALUE if "ignore" in label.lower() else 1
        return labels == (IGNORE_VALUE if self.layer == "ignore" else 1)


def shape_problem(shapes: Any) -> str | None:
    """Why ReasonSeg ``shapes`` cannot be drawn (or hold no target), or ``None``."""
    if not isinstance(shapes, list):
        return "'shapes' is not a list"
    targets = 0
    for shape in shapes:
        if not isinstance(shape, Mapping) or not isinstance(shape.get("label"), str):
            return "a shape has no label"
        points = shape.get("points")
        if not isinstance(points, list) or len(points) < 3:
            return f"shape {shape['label']!r} has fewer than 3 points"
        if not all(isinstance(p, list | tuple) and len(p) == 2 for p in points):
            return f"shape {shape['label']!r} has a point that is not [x, y]"
        if not all(isinstance(v, int | float) and np.isfinite(v) for p in points for v in p):
            return f"shape {shape['label']!r} has a coordinate that is not a finite number"
        label = shape["label"].lower()
        targets += label != "flag" and "ignore" not in label
    return None if targets else "no shape is labelled as a target"


def labelled_polygons(shapes: list[Mapping[str, Any]]) -> tuple[LabelledPolygons, LabelledPolygons]:
    """The ``(target, ignore)`` layers of checked ReasonSeg ``shapes`` (see :func:`shape_problem`)."""
    parsed = tuple((str(s["label"]), tuple((float(x), float(y)) for x, y in s["points"])) for s in shapes)
    return LabelledPolygons(parsed, "target"), LabelledPolygons(parsed, "ignore")
