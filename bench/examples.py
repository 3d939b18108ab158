"""Evaluation examples: what one (image, expression, ground-truth mask) is, wherever it came from.

Images and masks stay encoded until an example asks for them. A problem with one example
(mask size not the image size, empty sentence, missing mask) keeps the example, with
``error`` set, so the runner records it as a failure instead of losing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from bench.data_errors import DatasetError
from bench.rle import decode_rle, rle_area
from tools.errors import ConfigError, InputError, RefsegError
from tools.images import clean_expression, decode_image
from tools.types import Image

PER_IMAGE = ("all", "first")


class ImageSource(Protocol):
    """Where an example's image comes from; ``load`` decodes it."""

    def load(self) -> Image: ...


@dataclass(frozen=True, eq=False)
class ArrayImage:
    """An image already in memory (generated scenes)."""

    image: Image

    def load(self) -> Image:
        return self.image


@dataclass(frozen=True, eq=False, kw_only=True)
class Example:
    """One (image, referring expression, ground-truth mask) to evaluate.

    Attributes:
        example_id: stable id, ``"{image_id}:{sample_id}:{sentence_index}"``.
        image_id: id of the image (string; examples of one image share it).
        sample_id: id of the referred instance within the data set.
        sentence: the referring expression, as stored.
        sentence_index: position of the sentence in its sample's ``sentences``.
        category: object category (COCO label, or the generated shape).
        bbox_xywh: ground-truth box ``(x, y, w, h)``, or ``None`` when the row has none.
        source: the data set this came from (hub name, path, or ``synthetic``).
        error: why this example cannot be evaluated, or ``None``.
        file_name: the image's file name where the data set has one.
    """

    example_id: str
    image_id: str
    sample_id: str
    sentence: str
    sentence_index: int
    category: str
    bbox_xywh: tuple[float, float, float, float] | None
    source: str
    image_ref: ImageSource = field(repr=False)
    mask_ref: Mapping[str, Any] | np.ndarray | None = field(repr=False)
    error: str | None = None
    file_name: str = ""

    @property
    def ok(self) -> bool:
        """True when the example can be evaluated."""
        return self.error is None

    def load_image(self) -> Image:
        """Decode the image. Raises InputError when it is unreadable (this example only)."""
        return self.image_ref.load()

    def gt_mask(self) -> np.ndarray:
        """Ground truth ``(H, W) bool`` (an RLE is decoded on each call; arrays are read-only).

        Raises:
            DatasetError: the RLE is corrupt or missing.
        """
        if self.mask_ref is None:
            raise DatasetError(f"example {self.example_id} has no ground-truth mask")
        if isinstance(self.mask_ref, np.ndarray):
            return self.mask_ref
        return decode_rle(self.mask_ref)

    def gt_area(self) -> int:
        """Ground-truth area in pixels (from the RLE runs, without decoding)."""
        if self.mask_ref is None:
            raise DatasetError(f"example {self.example_id} has no ground-truth mask")
        if isinstance(self.mask_ref, np.ndarray):
            return int(np.count_nonzero(self.mask_ref))
        return rle_area(self.mask_ref)


@dataclass(frozen=True, eq=False)
class EncodedImage:
    """An image as its encoded file bytes: no handle on a data set table, so it pickles small
    and decodes on any machine (what a Ray worker receives)."""

    data: bytes
    name: str

    def load(self) -> Image:
        return decode_image(self.data, name=self.name)


@dataclass(frozen=True, eq=False)
class UnreadableImage:
    """An image whose bytes could not be read: loading raises the error the reader gave."""

    error: str

    def load(self) -> Image:
        raise InputError(self.error)


def self_contained(ex: Example) -> Example:
    """``ex`` with its image as bytes (or pixels) instead of a reference into a data set table.

    An image that cannot be read becomes an :class:`UnreadableImage` carrying the error text
    the local engine would record, so either engine records the same failure.
    """
    raw = getattr(ex.image_ref, "raw", None)
    if raw is None:  # pixels in memory (generated scenes), or an already encoded image
        return ex
    try:
        source: ImageSource = EncodedImage(bytes(raw()), str(getattr(ex.image_ref, "name", ex.image_id)))
    except RefsegError as exc:
        source = UnreadableImage(str(exc))
    except Exception as exc:  # the reader's own bug on one odd row: that row fails, not the run
        source = UnreadableImage(f"{type(exc).__name__}: {exc}")
    return replace(ex, image_ref=source)


class ExampleSet(list[Example]):
    """Examples, and what the loader could not turn into examples (never dropped silently).

    ``dropped`` counts by kind, e.g. ``{"rows_without_samples": 2,
    "samples_without_sentences": 1}``; the runner reports it and ``summary.json`` counts it.
    """

    def __init__(self, examples: Any = (), dropped: Mapping[str, int] | None = None):
        super().__init__(examples)
        self.dropped: dict[str, int] = dict(dropped or {})


def group_by_image(examples: list[Example]) -> list[tuple[str, list[Example]]]:
    """Examples grouped by ``image_id``, groups in order of first appearance."""
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.image_id, []).append(ex)
    return list(groups.items())


def check_selection(n: int | None, per_image: str) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"n must be a positive number of images, got {n!r}")
    if per_image not in PER_IMAGE:
        raise ConfigError(f"per_image must be one of {', '.join(PER_IMAGE)}, got {per_image!r}")


def select_rows(total: int, n: int | None, seed: int | None) -> list[int]:
    """First ``n`` rows, or with ``seed`` a random ``n`` of them (kept in data set order)."""
    k = total if n is None else min(n, total)
    if seed is None or k == total:
        return list(range(k))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(total, size=k, replace=False))


def parse_bbox(value: Any) -> tuple[float, float, float, float] | None:
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return x, y, w, h


def sentence_problem(sentence: Any) -> str | None:
    if not isinstance(sentence, str):
        return "the sentence is missing"
    try:
        clean_expression(sentence)
    except InputError as exc:
        return str(exc)
    return None
