"""``refcoco-m``: RefCOCO-M from the hub (``moondream/refcoco-m``) or a local parquet file or
folder in its schema.

RefCOCO-M (split ``validation``: 1,190 rows, one per image, 5,598 expressions). Schema, as its
dataset card declares it::

    image      Image            {bytes, path}
    image_id   int64
    file_name  string
    samples    list of struct:
        id int64, image_id int64, category string, supercategory string, label string,
        sentences list<string>, bbox list<float32> [x, y, w, h],
        mask struct {counts: string (compressed COCO RLE), size: list<int32> [H, W]}

The adapter requires ``image``, ``image_id`` and ``samples`` with ``id``, ``category``,
``sentences``, ``bbox`` and ``mask.{counts,size}``; everything else is optional. A local file
or folder is recognised by those three columns. One :class:`Example` per (image, sample,
sentence), following the card's evaluation protocol (mask IoU), streamed one row (image) at
a time: nothing is decoded until an example is evaluated.

A problem with the whole source (missing path, wrong schema) raises :class:`DatasetError`.
A problem with one row (empty sentence, missing mask) keeps the example, with ``error`` set,
so the runner records it as a failure; a mask whose size is not the image's fails when the
example is evaluated. A row with no samples, or a sample with no sentences, holds no
example: it is counted in ``dropped`` (the run reports it), never dropped silently. Image
paths stay inside the data set's folder (:mod:`bench.data.parquet`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import Example, ExampleSet, parse_bbox, sentence_problem
from bench.data.parquet import (
    ArrowImage,
    has_columns,
    iter_rows,
    local_root,
    open_table,
    struct_fields,
    undecoded_images,
)
from bench.data_errors import DatasetError

HUB_DATASET = "moondream/refcoco-m"
REQUIRED_COLUMNS = ("image", "image_id", "samples")
REQUIRED_SAMPLE_FIELDS = ("id", "category", "sentences", "bbox", "mask")
REQUIRED_MASK_FIELDS = ("counts", "size")


class RefcocomAdapter(DatasetAdapter):
    """RefCOCO-M (see the module docstring)."""

    name = "refcoco-m"
    description = "RefCOCO-M: one row per image, samples with sentences and COCO RLE masks"
    aliases = (HUB_DATASET,)
    naming = (
        f"refcoco-m or {HUB_DATASET} (hub); a local parquet file or folder with columns "
        "image, image_id, samples; refcoco-m:OWNER/NAME for a hub copy in this schema"
    )
    default_split = "validation"

    def detects(self, path: Path) -> bool:
        return has_columns(path, REQUIRED_COLUMNS)

    def open(self, source: str, request: DataRequest) -> DataSource:
        return RefcocomSource(self, HUB_DATASET if source == self.name else source, request)


class RefcocomSource(DataSource):
    """A RefCOCO-M table, streamed one row (image) at a time."""

    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest):
        table, files = open_table(source, adapter.split_of(request), request.cache_dir)
        check_schema(table.features, source)
        super().__init__(
            adapter,
            source,
            request,
            total_images=len(table),
            files=files,
            revision=None if files else getattr(table, "_fingerprint", None),
        )
        self.table = table
        self.images = undecoded_images(table, "image", source)
        self.root = local_root(source)
        self.meta_columns = [c for c in ("image_id", "file_name", "samples") if c in table.features]

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        rows = sorted(wanted) if wanted is not None else None
        for row, record in iter_rows(self.table, self.meta_columns, rows):
            image_id = str(record["image_id"])
            image_ref = ArrowImage(
                self.images, row, f"image {image_id}", self.root, self.request.allow_outside_paths
            )
            yield row, self._row_examples(record, image_ref)

    def _row_examples(self, record: Mapping[str, Any], image_ref: ArrowImage) -> list[Example]:
        image_id = str(record["image_id"])
        samples = [s for s in record.get("samples") or [] if s]
        if not samples:
            self.drop("rows_without_samples")
        out: list[Example] = []
        for sample in samples:
            mask = sample.get("mask")
            mask_error = mask_problem(mask)
            sentences = sample.get("sentences") or []
            if isinstance(sentences, str):  # a hand-made table with one sentence per sample
                sentences = [sentences]
            if not sentences:
                self.drop("samples_without_sentences")
            sample_id = str(sample.get("id"))
            for index, sentence in enumerate(sentences):
                out.append(
                    Example(
                        example_id=f"{image_id}:{sample_id}:{index}",
                        image_id=image_id,
                        sample_id=sample_id,
                        sentence=sentence if isinstance(sentence, str) else "",
                        sentence_index=index,
                        category=str(sample.get("category") or ""),
                        bbox_xywh=parse_bbox(sample.get("bbox")),
                        source=self.source,
                        image_ref=image_ref,
                        mask_ref=mask if isinstance(mask, Mapping) else None,
                        error=mask_error or sentence_problem(sentence),
                        file_name=str(record.get("file_name") or ""),
                    )
                )
        return out


def check_schema(features: Mapping[str, Any], source: str) -> None:
    """Raise :class:`DatasetError` naming what a RefCOCO-M table lacks."""
    missing = [c for c in REQUIRED_COLUMNS if c not in features]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {', '.join(missing)}; a RefCOCO-M table needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    sample = struct_fields(features["samples"])
    if sample is None:
        raise DatasetError(f"{source}: column 'samples' must be a list of structs")
    missing = [f"samples.{f}" for f in REQUIRED_SAMPLE_FIELDS if f not in sample]
    if not missing:
        mask = struct_fields(sample["mask"]) or {}
        missing = [f"samples.mask.{f}" for f in REQUIRED_MASK_FIELDS if f not in mask]
    if missing:
        raise DatasetError(f"{source}: missing field(s) {', '.join(missing)} in the RefCOCO-M schema")


def mask_problem(mask: Any) -> str | None:
    """Why a sample's mask cannot be used (its size against the image's is checked when the
    example is evaluated, once the image is decoded), or ``None``."""
    if not isinstance(mask, Mapping) or mask.get("counts") is None or mask.get("size") is None:
        return "the sample has no mask (counts and size)"
    try:
        h, w = (int(v) for v in mask["size"])
    except (TypeError, ValueError):
        return f"mask size {mask['size']!r} is not [H, W]"
    if h < 1 or w < 1:
        return f"mask size [{h}, {w}] ([H, W]) is empty"
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
    """RefCOCO-M examples from the hub, a parquet file, or a folder of shards, in memory.

    Args:
        dataset: hub name (``moondream/refcoco-m``), or a local ``.parquet`` file or folder.
        split: hub split; for a folder, shards named ``{split}-*`` are preferred when present.
        n: number of images (all when ``None``); each keeps all its expressions.
        per_image: ``"all"`` expressions, or only the ``"first"`` one per image.
        seed: with ``n``, a random subset of ``n`` images instead of the first ``n``.
        cache_dir: datasets cache folder (default: the datasets library's).
        allow_outside_paths: read image paths outside the data set's folder too.

    Raises:
        DatasetError: the source does not exist, cannot be read, or lacks required fields.
        ConfigError: bad ``n`` or ``per_image``.
    """
    request = DataRequest(split, n, per_image, seed, cache_dir, allow_outside_paths)
    return ExampleSet.of(RefcocomAdapter().open(dataset, request))
