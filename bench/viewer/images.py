"""Pictures for the example page, drawn on demand: the image, ground truth and masks as layers.

The image and the ground truth come from the data set the run records in ``config.json``
(``results.data``, opened through its dataset adapter: synthetic scenes are generated again,
parquet files and hub data sets are read again), with the run's perturbation
applied, so the page shows the image as the run saw it. Predicted and candidate masks come
from the RLE in the records. Masks are served as transparent RGBA layers the page stacks
on the image, so toggling one costs no request. Without the data set (offline, moved
files) the masks are drawn on a grey canvas and the page says why.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.data.examples import Example
from bench.options import DataSpec
from bench.perturb import perturb_image
from bench.records import RLE
from bench.rle import decode_rle
from bench.segment import IMAGE_SUFFIXES
from cache.lru import LRU
from tools.errors import RefsegError
from tools.images import load_image
from tools.render import mask_edges, overlay

# What one picture request may draw: its pixels come from the records (a mask's size) or the
# data set, and a 100-byte line can claim any size. 25 MP (a 6000x4000 photo) costs ~100 MB as
# an RGBA layer; a larger frame is refused (HTTP 413) before anything is allocated for it.
MAX_DRAWN_PIXELS = 25_000_000
GT_COLOUR = (0, 200, 90)
PRED_COLOUR = (255, 0, 200)
CANVAS_GREY = 96
_FILL_ALPHA = 90
_CACHED_IMAGES = 32


class PictureTooLarge(RefsegError):
    """A picture over :data:`MAX_DRAWN_PIXELS`: not drawn (the viewer answers HTTP 413)."""

    def __init__(self, size: tuple[int, int]):
        super().__init__(
            f"a {size[0]}x{size[1]} picture is over the viewer's {MAX_DRAWN_PIXELS:,}-pixel limit"
        )


def check_drawable(size: tuple[int, int]) -> None:
    """Raise :class:`PictureTooLarge` when a ``(H, W)`` frame is over :data:`MAX_DRAWN_PIXELS`."""
    if size[0] * size[1] > MAX_DRAWN_PIXELS:
        raise PictureTooLarge(size)


def png_bytes(image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # drawn per request: speed over size
    return buf.getvalue()


def canvas(size: tuple[int, int]) -> np.ndarray:
    """A grey ``(H, W, 3) uint8`` stand-in for an image that cannot be loaded."""
    return np.full((*size, 3), CANVAS_GREY, dtype=np.uint8)


def layer_png(mask: np.ndarray | None, size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    """A transparent RGBA PNG of ``size = (H, W)``: ``mask`` tinted with its edge drawn solid."""
    rgba = np.zeros((*size, 4), dtype=np.uint8)
    if mask is not None and mask.shape == size and mask.any():
        rgba[mask] = (*colour, _FILL_ALPHA)
        rgba[mask_edges(mask, max(2, round(max(size) / 300)))] = (*colour, 255)
    return png_bytes(PILImage.fromarray(rgba, mode="RGBA"))


def candidate_png(pixels: np.ndarray, mask: np.ndarray | None, label: str, max_side: int = 240) -> bytes:
    """A thumbnail of one candidate mask over the image (the bench's overlay style)."""
    img = overlay(pixels, mask if mask is not None and mask.shape == pixels.shape[:2] else None, (), label)
    img.thumbnail((max_side, max_side))
    return png_bytes(img)


def mask_of(rle: Any) -> np.ndarray | None:
    """The decoded mask of a record's RLE, or ``None`` when it is absent or corrupt.

    Raises:
        PictureTooLarge: its declared size is over :data:`MAX_DRAWN_PIXELS` (checked before
            decoding: the runs of a one-line RLE can cover any size).
    """
    if isinstance(rle, RLE):
        rle = rle.model_dump()
    if not isinstance(rle, Mapping):
        return None
    size = rle.get("size")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
        check_drawable((size[0], size[1]))
    try:
        return decode_rle(rle)
    except RefsegError:
        return None


def _spec_key(spec: DataSpec | None) -> tuple[Any, ...]:
    if spec is None:
        return (None,)
    return (spec.dataset, spec.split, spec.n, spec.per_image, spec.seed_subset, spec.allow_outside_paths)


class DatasetImages:
    """The examples of each data spec seen so far, loaded once, and their decoded images."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[Any, ...], tuple[dict[str, Example], str | None]] = {}
        self._pixels: LRU[tuple[Any, ...], np.ndarray | str] = LRU(_CACHED_IMAGES)

    def examples(self, spec: DataSpec | None) -> tuple[dict[str, Example], str | None]:
        """``(examples by id, None)``, or ``({}, why they cannot be loaded)``."""
        key = _spec_key(spec)
        with self._lock:
            if key not in self._sets:
                self._sets[key] = _load(spec)
            return self._sets[key]

    def example(self, spec: DataSpec | None, example_id: str) -> tuple[Example | None, str | None]:
        examples, error = self.examples(spec)
        if error is not None:
            return None, error
        found = examples.get(example_id)
        return (found, None) if found is not None else (None, f"{example_id} is not in the run's data set")

    def pixels(self, spec: DataSpec | None, example_id: str) -> tuple[np.ndarray | None, str | None]:
        """The example's image as the run saw it (perturbed), or ``(None, why not)``."""
        ex, error = self.example(spec, example_id)
        if ex is None or spec is None:
            return None, error
        perturbation = spec.perturb
        key = (*_spec_key(spec), perturbation, ex.image_id)
        cached = self._pixels.get(key)
        if cached is None:
            cached = _decode(ex, perturbation)
            self._pixels.put(key, cached)
        return (None, cached) if isinstance(cached, str) else (cached, None)

    def file_pixels(self, path: Any) -> np.ndarray | None:
        """The pixels of the image file a ``refseg segment`` result names (``None`` when it
        names none, or the file is gone or not an image)."""
        if not isinstance(path, str) or Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            return None
        key = ("file", path)
        cached = self._pixels.get(key)
        if cached is None:
            try:
                cached = load_image(path).pixels
            except Exception as exc:  # moved or unreadable: the candidates are drawn on grey
                cached = f"{type(exc).__name__}: {exc}"
            self._pixels.put(key, cached)
        return None if isinstance(cached, str) else cached

    def ground_truth(self, spec: DataSpec | None, example_id: str) -> tuple[np.ndarray | None, str | None]:
        ex, error = self.example(spec, example_id)
        if ex is None:
            return None, error
        pixels, _ = self.pixels(spec, example_id)  # a drawn target (polygons) needs the image's size
        size = (int(pixels.shape[0]), int(pixels.shape[1])) if pixels is not None else None
        try:
            return ex.gt_mask(size), None
        except RefsegError as exc:
            return None, str(exc)


def _load(spec: DataSpec | None) -> tuple[dict[str, Example], str | None]:
    """The run's examples by id (a run's examples are few enough for a page to hold them:
    references into the data set, whose images and masks are read when drawn)."""
    if spec is None:
        return {}, "the run's config.json does not say which data set it used"
    try:
        examples = {ex.example_id: ex for group in spec.open().groups() for ex in group}
    except Exception as exc:  # any loader failure (offline hub, moved file) only hides the images
        return {}, f"data set {spec.dataset!r} cannot be loaded here ({type(exc).__name__}: {exc})"
    return examples, None


def _decode(ex: Example, perturbation: str) -> np.ndarray | str:
    try:
        return perturb_image(ex.load_image(), perturbation).pixels
    except Exception as exc:  # an unreadable image is a message on the page, not a server error
        return f"image {ex.image_id} cannot be decoded ({type(exc).__name__}: {exc})"
