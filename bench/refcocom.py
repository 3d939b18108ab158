"""RefCOCO-M (hub or local parquet) as evaluation examples.

RefCOCO-M (``moondream/refcoco-m``, split ``validation``: 1,190 rows, one per image, 5,598
expressions). Schema, as its dataset card declares it::

    image      Image            {bytes, path}
    image_id   int64
    file_name  string
    samples    list of struct:
        id int64, image_id int64, category string, supercategory string, label string,
        sentences list<string>, bbox list<float32> [x, y, w, h],
        mask struct {counts: string (compressed COCO RLE), size: list<int32> [H, W]}

The loader requires ``image``, ``image_id`` and ``samples`` with ``id``, ``category``,
``sentences``, ``bbox`` and ``mask.{counts,size}``; everything else is optional. One
:class:`Example` per (image, sample, sentence), following the card's evaluation protocol.
Images and masks stay encoded until an example asks for them, so loading the whole split
decodes nothing but image headers (to check mask sizes).

A problem with the whole source (missing path, wrong schema) raises :class:`DatasetError`.
A problem with one row (mask size not the image size, empty sentence, missing mask) keeps
the example, with ``error`` set, so the runner records it as a failure instead of losing it.
A row with no samples, or a sample with no sentences, holds no example: it is counted in
the returned :class:`ExampleSet`'s ``dropped`` (the run reports it), never dropped silently.

A row whose image has no bytes but a ``path`` is read from the data set's own folder (the
parquet file's folder, or the folder given); a path that leads outside it (``../x.png``,
``/etc/shadow``, a symbolic link out) fails that example, unless ``allow_outside_paths``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from bench.data_errors import DatasetError
from bench.examples import (
    Example,
    ExampleSet,
    check_selection,
    parse_bbox,
    select_rows,
    sentence_problem,
)
from tools.errors import InputError
from tools.images import decode_image
from tools.types import Image

HUB_DATASET = "moondream/refcoco-m"
REQUIRED_COLUMNS = ("image", "image_id", "samples")
REQUIRED_SAMPLE_FIELDS = ("id", "category", "sentences", "bbox", "mask")
REQUIRED_MASK_FIELDS = ("counts", "size")

_HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass(frozen=True, eq=False)
class ArrowImage:
    """Row ``row`` of a datasets table whose ``image`` column is not decoded.

    ``root`` is the data set's folder (``None`` for a hub data set): an image ``path`` is read
    only from inside it, unless ``allow_outside``.
    """

    table: Any  # datasets.Dataset with image cast to Image(decode=False)
    row: int
    name: str
    root: Path | None = None
    allow_outside: bool = False

    def raw(self) -> bytes:
        """The encoded image bytes (read from ``path`` when the row has no bytes)."""
        record = self.table[self.row]["image"]
        if not record:
            raise InputError(f"{self.name}: the row has no image")
        data = record.get("bytes")
        if data:
            return bytes(data)
        path = record.get("path")
        if not path:
            raise InputError(f"{self.name}: the row has no image bytes and no path")
        file = image_path(str(path), self.root, self.allow_outside, self.name)
        if not file.is_file():
            raise InputError(f"{self.name}: the row has no image bytes and no readable path ({path!r})")
        return file.read_bytes()

    def load(self) -> Image:
        return decode_image(self.raw(), name=self.name)


OUTSIDE_FLAG = "--allow-image-paths-outside"


def image_path(path: str, root: Path | None, allow_outside: bool, name: str) -> Path:
    """Where a row's image ``path`` points: inside ``root`` (the data set's folder) only.

    Raises:
        InputError: the path leads outside ``root`` (or there is no local folder), and
            ``allow_outside`` is off.
    """
    candidate = Path(path).expanduser()
    if root is not None and not candidate.is_absolute():
        candidate = root / candidate
    if allow_outside:
        return candidate
    if root is None:
        raise InputError(
            f"{name}: image path {path!r} of a hub data set is not read; pass {OUTSIDE_FLAG} to read it"
        )
    resolved = candidate.resolve()  # follows symbolic links: a link out of the folder is out
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(
            f"{name}: image path {path!r} is outside the data set folder {root}; "
            f"pass {OUTSIDE_FLAG} to read it"
        )
    return resolved


def _parquet_files(path: Path, split: str) -> list[str]:
    if path.is_file():
        return [str(path)]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise DatasetError(f"{path}: the folder has no .parquet files")
    # A folder laid out like the hub repo (data/validation-00000-of-00002.parquet, ...):
    # take the requested split's shards when there are any.
    in_split = [p for p in files if p.name.startswith((f"{split}-", f"{split}."))]
    return [str(p) for p in (in_split or files)]


def _open(dataset: str, split: str, cache_dir: str | None) -> Any:
    import datasets  # heavy import, only when a data set is actually loaded

    path = Path(dataset).expanduser()
    if path.exists():
        files = _parquet_files(path, split)
        try:
            return datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
        except Exception as exc:  # pyarrow/datasets raise many types for a bad file
            raise DatasetError(f"{path}: cannot read it as parquet ({type(exc).__name__}: {exc})") from None
    if (
        dataset.endswith(".parquet")
        or dataset.startswith((".", "/", "~"))
        or not _HUB_NAME.fullmatch(dataset)
    ):
        raise DatasetError(f"{dataset}: no such file or folder; pass a parquet file or folder")
    try:
        return datasets.load_dataset(dataset, split=split, cache_dir=cache_dir)
    except Exception as exc:  # offline, unknown repo, unknown split, ...
        raise DatasetError(
            f"cannot load {dataset!r} (split {split!r}) from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}); check the name and your network, or pass a local "
            "parquet file or folder"
        ) from None


def _struct(feature: Any) -> dict[str, Any] | None:
    """The field dict of a struct feature, looking through list wrappers; None if not one."""
    while not isinstance(feature, dict):
        if isinstance(feature, list | tuple) and len(feature) == 1:
            feature = feature[0]
        elif hasattr(feature, "feature"):  # datasets List / Sequence
            feature = feature.feature
        else:
            return None
    return feature


def _check_schema(features: Mapping[str, Any], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in features]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {', '.join(missing)}; a RefCOCO-M table needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    sample = _struct(features["samples"])
    if sample is None:
        raise DatasetError(f"{source}: column 'samples' must be a list of structs")
    missing = [f"samples.{f}" for f in REQUIRED_SAMPLE_FIELDS if f not in sample]
    if not missing:
        mask = _struct(sample["mask"]) or {}
        missing = [f"samples.mask.{f}" for f in REQUIRED_MASK_FIELDS if f not in mask]
    if missing:
        raise DatasetError(f"{source}: missing field(s) {', '.join(missing)} in the RefCOCO-M schema")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """``(H, W)`` of encoded image bytes after EXIF rotation, from the header only."""
    try:
        # Only the header is read, so PIL's decompression-bomb warning is a false alarm here;
        # tools.images.decode_image enforces the real pixel limit when the image is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
        with img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # unreadable: load_image() reports it for each example
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _mask_problem(mask: Any, image_size: tuple[int, int] | None) -> str | None:
    if not isinstance(mask, Mapping) or mask.get("counts") is None or mask.get("size") is None:
        return "the sample has no mask (counts and size)"
    try:
        h, w = (int(v) for v in mask["size"])
    except (TypeError, ValueError):
        return f"mask size {mask['size']!r} is not [H, W]"
    if image_size is not None and (h, w) != image_size:
        return f"mask size {h}x{w} does not match the image size {image_size[0]}x{image_size[1]}"
    return None


def load_refcocom(
    dataset: str = HUB_DATASET,
    split: str = "validation",
    *,
    n: int | None = None,
    per_image: str = "all",
    seed: int | None = None,
    cache_dir: str | None = None,
    allow_outside_paths: bool = False,
) -> ExampleSet:
    """Load RefCOCO-M examples from the hub, a parquet file, or a folder of parquet shards.

    Args:
        dataset: hub name (``moondream/refcoco-m``), or a local ``.parquet`` file or folder.
        split: hub split; for a folder, shards named ``{split}-*`` are preferred when present.
        n: number of images (all when ``None``); each keeps all its expressions.
        per_image: ``"all"`` expressions, or only the ``"first"`` one per image.
        seed: with ``n``, a random subset of ``n`` images instead of the first ``n``.
        cache_dir: datasets cache folder (default: the datasets library's).
        allow_outside_paths: read image paths outside the data set's folder too.

    Returns:
        Examples in data set order. Rows with problems are kept with ``error`` set; rows
        without samples and samples without sentences are counted in ``dropped``.

    Raises:
        DatasetError: the source does not exist, cannot be read, or lacks required fields.
        ConfigError: bad ``n`` or ``per_image``.
    """
    check_selection(n, per_image)
    import datasets

    table = _open(dataset, split, cache_dir)
    _check_schema(table.features, dataset)
    rows = select_rows(len(table), n, seed)
    try:
        images = table.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    except Exception as exc:
        raise DatasetError(f"{dataset}: column 'image' is not an image ({exc})") from None
    meta_cols = [c for c in ("image_id", "file_name", "samples") if c in table.features]
    meta = table.select_columns(meta_cols).select(rows)
    local = Path(dataset).expanduser()
    root = (local if local.is_dir() else local.parent) if local.exists() else None
    examples = ExampleSet(dropped={"rows_without_samples": 0, "samples_without_sentences": 0})
    for row, record in zip(rows, meta, strict=True):
        image_id = str(record["image_id"])
        image_ref = ArrowImage(images, row, f"image {image_id}", root, allow_outside_paths)
        found = _row_examples(record, image_ref, per_image, dataset, examples.dropped)
        examples.extend(found)
    return examples


def _row_examples(
    record: Mapping[str, Any], image_ref: ArrowImage, per_image: str, source: str, dropped: dict[str, int]
) -> list[Example]:
    image_id = str(record["image_id"])
    samples = [s for s in record.get("samples") or [] if s]
    if not samples:
        dropped["rows_without_samples"] += 1
    image_size: tuple[int, int] | None = None
    if samples:
        try:
            image_size = _header_size(image_ref.raw())
        except InputError:
            image_size = None  # load_image() raises it for each example
    out: list[Example] = []
    for sample in samples:
        mask = sample.get("mask")
        mask_error = _mask_problem(mask, image_size)
        sentences = sample.get("sentences") or []
        if isinstance(sentences, str):  # a hand-made table with one sentence per sample
            sentences = [sentences]
        if not sentences:
            dropped["samples_without_sentences"] += 1
        for index, sentence in enumerate(sentences):
            sample_id = str(sample.get("id"))
            out.append(
                Example(
                    example_id=f"{image_id}:{sample_id}:{index}",
                    image_id=image_id,
                    sample_id=sample_id,
                    sentence=sentence if isinstance(sentence, str) else "",
                    sentence_index=index,
                    category=str(sample.get("category") or ""),
                    bbox_xywh=parse_bbox(sample.get("bbox")),
                    source=source,
                    image_ref=image_ref,
                    mask_ref=mask if isinstance(mask, Mapping) else None,
                    error=mask_error or sentence_problem(sentence),
                    file_name=str(record.get("file_name") or ""),
                )
            )
            if per_image == "first":
                return out
    return out
