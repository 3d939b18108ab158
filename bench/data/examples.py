"""Evaluation examples: what one (image, expression, ground truth) is, wherever it came from.

Images and masks stay encoded (or unread) until an example asks for them. A problem with one
example (empty sentence, missing mask) keeps the example, with ``error`` set, so the runner
records it as a failure instead of losing it. A data set streams its examples as **image
groups** (the examples of one image, consecutive in the data set's order): see
:class:`ExampleSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bench.data.masks import RasterMask
from bench.data_errors import DatasetError
from bench.rle import decode_rle, rle_area
from tools.errors import ConfigError, InputError, RefsegError
from tools.images import clean_expression, decode_image
from tools.types import Image

if TYPE_CHECKING:
    from bench.data.protocol import EvalProtocol, GroundTruth
    from bench.records import DatasetRecord

PER_IMAGE = ("all", "first")
# A mask as a data set gives it: COCO RLE, an array, a function that reads it when asked (a
# PNG file), or a drawing made at the image's size when scored (polygons, an empty target).
MaskSource = Mapping[str, Any] | np.ndarray | Callable[[], np.ndarray] | RasterMask


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
    """One (image, referring expression, ground truth) to evaluate.

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
        tags: attributes a protocol breaks metrics down by (``{"query": "long"}``); recorded
            in the example's ``samples.jsonl`` line.
        ignore_ref: pixels left out of scoring (``None``: none).
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
    mask_ref: MaskSource | None = field(repr=False)
    error: str | None = None
    file_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    ignore_ref: MaskSource | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the example can be evaluated."""
        return self.error is None

    def load_image(self) -> Image:
        """Decode the image. Raises InputError when it is unreadable (this example only)."""
        return self.image_ref.load()

    def gt_mask(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """Ground truth ``(H, W) bool`` (an RLE is decoded on each call; arrays are read-only).

        Args:
            size: the image's ``(height, width)``: a drawn mask (polygons) needs it.

        Raises:
            DatasetError: the mask is corrupt or missing, or is drawn and no size was given.
        """
        if self.mask_ref is None:
            raise DatasetError(f"example {self.example_id} has no ground-truth mask")
        return _read_mask(self.mask_ref, size)

    def ground_truth(self, size: tuple[int, int] | None = None) -> GroundTruth:
        """The target mask and the region left out of scoring (see :mod:`bench.data.protocol`),
        drawn at ``size`` (the image's ``(height, width)``) where they are drawings.

        Raises:
            DatasetError: a mask is corrupt or missing.
        """
        from bench.data.protocol import GroundTruth

        ignore = _read_mask(self.ignore_ref, size) if self.ignore_ref is not None else None
        return GroundTruth(self.gt_mask(size), ignore)

    def gt_area(self, size: tuple[int, int] | None = None) -> int:
        """Ground-truth area in pixels (an RLE's from its runs, without decoding)."""
        if self.mask_ref is None:
            raise DatasetError(f"example {self.example_id} has no ground-truth mask")
        if isinstance(self.mask_ref, Mapping):
            return rle_area(self.mask_ref)
        return int(np.count_nonzero(_read_mask(self.mask_ref, size)))


def _read_mask(source: MaskSource, size: tuple[int, int] | None = None) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    if isinstance(source, Mapping):
        return decode_rle(source)
    if isinstance(source, RasterMask):
        if size is None:
            raise DatasetError("the ground truth is drawn at the image's size: load the image first")
        return source.draw(*size)
    try:
        mask = np.asarray(source(), dtype=bool)
    except RefsegError:
        raise
    except Exception as exc:  # a data set's reader failing on one odd row
        raise DatasetError(f"the ground-truth mask cannot be read ({type(exc).__name__}: {exc})") from None
    if mask.ndim != 2:
        raise DatasetError(f"the ground-truth mask is not 2-D (shape {mask.shape})")
    return mask


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
    """``ex`` with its image as bytes (or pixels) and its masks read, instead of references
    into a data set table (what a Ray worker receives).

    An image that cannot be read becomes an :class:`UnreadableImage` carrying the error text
    the local engine would record, so either engine records the same failure; so does a mask
    that cannot be read (the example's ``error``).
    """
    ex = _masks_read(ex)
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


def _masks_read(ex: Example) -> Example:
    """Masks given as functions (lazy readers) read now and kept as COCO RLE."""
    from bench.rle import encode_rle

    if not callable(ex.mask_ref) and not callable(ex.ignore_ref):
        return ex
    try:
        mask = encode_rle(ex.gt_mask()) if callable(ex.mask_ref) else ex.mask_ref
        ignore = encode_rle(_read_mask(ex.ignore_ref)) if callable(ex.ignore_ref) else ex.ignore_ref
    except RefsegError as exc:
        return replace(ex, mask_ref=None, ignore_ref=None, error=ex.error or str(exc))
    return replace(ex, mask_ref=mask, ignore_ref=ignore)


class ExampleSource(Protocol):
    """A data set selection's examples, streamed as image groups in the data set's order.

    :meth:`groups` may be called more than once (the runner reads the examples' ids first,
    then streams the groups to the engine); each call reads the data set again, holding one
    group at a time. ``dropped`` (rows or samples that held no example, by kind) is complete
    once a call of :meth:`groups` has run to the end.
    """

    @property
    def protocol(self) -> EvalProtocol:
        """How the examples are scored."""
        ...

    @property
    def dropped(self) -> dict[str, int]: ...

    def groups(self) -> Iterator[list[Example]]:
        """The examples, one image's at a time (consecutive examples of one image)."""
        ...

    def record(self) -> DatasetRecord:
        """What was read, for ``config.json`` (adapter, protocol, source, split, files)."""
        ...


class ExampleSet(list[Example]):
    """Examples held in memory, and what the loader could not turn into examples (never
    dropped silently); also an :class:`ExampleSource` (its groups are its consecutive runs
    of one image).

    ``dropped`` counts by kind, e.g. ``{"rows_without_samples": 2,
    "samples_without_sentences": 1}``; the runner reports it and ``summary.json`` counts it.
    """

    def __init__(
        self,
        examples: Iterable[Example] = (),
        dropped: Mapping[str, int] | None = None,
        *,
        protocol: EvalProtocol | None = None,
        record: DatasetRecord | None = None,
    ):
        super().__init__(examples)
        self.dropped: dict[str, int] = dict(dropped or {})
        self._protocol = protocol
        self._record = record

    @property
    def protocol(self) -> EvalProtocol:
        if self._protocol is None:
            from bench.data.protocols import MASK_IOU

            return MASK_IOU
        return self._protocol

    def groups(self) -> Iterator[list[Example]]:
        return consecutive_groups(self)

    def record(self) -> DatasetRecord:
        if self._record is None:
            from bench.records import DatasetRecord

            source = self[0].source if self else ""
            return DatasetRecord(adapter="in-memory", protocol=self.protocol.name, source=source)
        return self._record

    @classmethod
    def of(cls, source: ExampleSource) -> ExampleSet:
        """Every example of ``source`` in memory (with its protocol, record and drops)."""
        examples = [ex for group in source.groups() for ex in group]
        return cls(examples, source.dropped, protocol=source.protocol, record=source.record())


def consecutive_groups(examples: Iterable[Example]) -> Iterator[list[Example]]:
    """Runs of consecutive examples of one image, in order (an image that appears again
    later starts a new group)."""
    group: list[Example] = []
    for ex in examples:
        if group and ex.image_id != group[0].image_id:
            yield group
            group = []
        group.append(ex)
    if group:
        yield group


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
