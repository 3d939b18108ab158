"""``refcoco``, ``refcoco+``, ``refcocog``: the RefCOCO family in the lmms-lab parquet layout.

The evaluation community publishes RefCOCO (UNC splits ``val``, ``test``, ``testA``,
``testB``), RefCOCO+ (``val``, ``testA``, ``testB``) and RefCOCOg (UMD splits ``val``,
``test``) as the hub data sets ``lmms-lab/RefCOCO``, ``lmms-lab/RefCOCOplus`` and
``lmms-lab/RefCOCOg``, one row per referred object. Schema, as their data set cards declare it::

    question_id   string          the row's id
    image         Image           {bytes, path}
    question      string          a prompt (not used)
    answer        list<string>    the object's referring sentences
    segmentation  list<float32>   one flat polygon [x1, y1, x2, y2, ...] in pixels
    bbox          list<float32>   [x, y, w, h]
    iscrowd       int8
    file_name     string          the COCO image file (rows of one image share it)

One :class:`Example` per (object, sentence). The ground truth is the polygon rasterised at the
image's size exactly as COCO does (``frPyObjects`` -> ``merge`` -> ``decode``:
:class:`bench.data.masks.CocoMask`); a row whose polygon cannot be drawn keeps its examples
with the reason as their error. Rows are streamed in file order, consecutive rows of one
``file_name`` forming one image group. Scored by :data:`bench.data.protocols.MASK_IOU`
(mIoU, cIoU, Pr@0.5..0.9), as RES papers report these sets.

A local parquet file or folder with the columns ``question_id``, ``image``, ``answer``,
``segmentation``, ``file_name`` is recognised as this layout (``refcoco``); ``refcocog:PATH``
records it under another family member's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import Example, parse_bbox, sentence_problem
from bench.data.masks import CocoMask, as_polygons, segmentation_problem
from bench.data.parquet import (
    ArrowImage,
    has_columns,
    iter_rows,
    local_root,
    open_table,
    undecoded_images,
)
from bench.data_errors import DatasetError

REQUIRED_COLUMNS = ("question_id", "image", "answer", "segmentation", "file_name")
META_COLUMNS = ("question_id", "answer", "segmentation", "bbox", "iscrowd", "file_name")
_DIGITS = re.compile(r"(\d+)$")


class RefcocoFamilyAdapter(DatasetAdapter):
    """One member of the RefCOCO family (see the module docstring)."""

    hub: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ()
    default_split = "val"

    def detects(self, path: Path) -> bool:
        return False  # the layout is claimed once, by ``refcoco``

    def open(self, source: str, request: DataRequest) -> DataSource:
        hub = source in (self.name, self.hub)
        split = self.split_of(request)
        if hub and split not in self.splits:
            raise DatasetError(
                f"{self.name} has no split {split!r}; its splits are {', '.join(self.splits)} (--split)"
            )
        return LmmsRefcocoSource(self, self.hub if hub else source, request)


class RefcocoAdapter(RefcocoFamilyAdapter):
    """RefCOCO (UNC); also any local parquet in the lmms-lab layout."""

    name = "refcoco"
    hub = "lmms-lab/RefCOCO"
    splits = ("val", "test", "testA", "testB")
    aliases = (hub,)
    description = "RefCOCO (UNC splits) in the lmms-lab parquet layout: objects with polygons and sentences"
    naming = (
        f"refcoco or {hub} (hub; splits val, test, testA, testB); a local parquet file or folder "
        "with columns question_id, image, answer, segmentation, file_name (any of the family)"
    )

    def detects(self, path: Path) -> bool:
        return has_columns(path, REQUIRED_COLUMNS)


class RefcocoPlusAdapter(RefcocoFamilyAdapter):
    """RefCOCO+ (UNC splits; no location words in the sentences)."""

    name = "refcoco+"
    hub = "lmms-lab/RefCOCOplus"
    splits = ("val", "testA", "testB")
    aliases = (hub,)
    description = "RefCOCO+ (UNC splits, no location words) in the lmms-lab parquet layout"
    naming = f"refcoco+ or {hub} (hub; splits val, testA, testB); refcoco+:PATH for a local copy"


class RefcocogAdapter(RefcocoFamilyAdapter):
    """RefCOCOg (UMD splits; longer sentences)."""

    name = "refcocog"
    hub = "lmms-lab/RefCOCOg"
    splits = ("val", "test")
    aliases = (hub,)
    description = "RefCOCOg (UMD splits, longer sentences) in the lmms-lab parquet layout"
    naming = f"refcocog or {hub} (hub; UMD splits val, test); refcocog:PATH for a local copy"


def check_columns(features: Mapping[str, Any], source: str) -> None:
    """Raise :class:`DatasetError` naming the lmms-lab layout's columns a table lacks."""
    missing = [c for c in REQUIRED_COLUMNS if c not in features]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {', '.join(missing)}; the lmms-lab RefCOCO layout needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )


def image_id_of(file_name: str, row: int) -> str:
    """The COCO image id in a file name (``COCO_train2014_000000581857.jpg`` -> ``581857``); the
    file's stem when it has no number; ``row<N>`` when the row names no file."""
    stem = Path(file_name).stem
    if not stem:
        return f"row{row}"
    found = _DIGITS.search(stem)
    return str(int(found.group(1))) if found else stem


class LmmsRefcocoSource(DataSource):
    """An lmms-lab RefCOCO table, streamed one image (a run of rows of one file) at a time."""

    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest):
        split = adapter.split_of(request)
        table, files = open_table(source, split, request.cache_dir)
        check_columns(table.features, source)
        self.table = table
        self.images = undecoded_images(table, "image", source)
        self.root = local_root(source)
        self.columns = [c for c in META_COLUMNS if c in table.features]
        self.starts = self._group_starts()  # first row of each image group, then the end
        super().__init__(
            adapter,
            source,
            request,
            total_images=len(self.starts) - 1,
            files=files,
            revision=None if files else getattr(table, "_fingerprint", None),
        )

    def _group_starts(self) -> list[int]:
        """Row indices where a new ``file_name`` starts (one int per image: bounded memory)."""
        starts: list[int] = []
        previous: Any = object()
        for row, record in iter_rows(self.table, ["file_name"]):
            if record["file_name"] != previous or not record["file_name"]:
                starts.append(row)
            previous = record["file_name"]
        return [*starts, len(self.table)]

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        positions = range(len(self.starts) - 1) if wanted is None else sorted(wanted)
        rows = (
            None
            if wanted is None
            else [r for p in positions for r in range(self.starts[p], self.starts[p + 1])]
        )
        group: list[Example] = []
        position = -1
        for row, record in iter_rows(self.table, self.columns, rows):
            if position < 0 or row >= self.starts[position + 1]:
                if position >= 0:
                    yield position, group
                position, group = self._position_of(row, position), []
            group.extend(self._row_examples(row, record))
        if position >= 0:
            yield position, group

    def _position_of(self, row: int, after: int) -> int:
        position = after + 1
        while self.starts[position + 1] <= row:
            position += 1
        return position

    def _row_examples(self, row: int, record: Mapping[str, Any]) -> list[Example]:
        file_name = str(record.get("file_name") or "")
        image_id = image_id_of(file_name, row)
        object_id = str(record.get("question_id") or f"row{row}")
        sentences = record.get("answer") or []
        if isinstance(sentences, str):
            sentences = [sentences]
        if not sentences:
            self.drop("objects_without_sentences")
        segmentation = as_polygons(record.get("segmentation"))
        problem = segmentation_problem(segmentation)
        mask = CocoMask((segmentation,)) if problem is None else None
        image_ref = ArrowImage(
            self.images, row, f"image {image_id}", self.root, self.request.allow_outside_paths
        )
        return [
            Example(
                example_id=f"{image_id}:{object_id}:{index}",
                image_id=image_id,
                sample_id=object_id,
                sentence=sentence if isinstance(sentence, str) else "",
                sentence_index=index,
                category="",
                bbox_xywh=parse_bbox(record.get("bbox")),
                source=self.source,
                image_ref=image_ref,
                mask_ref=mask,
                error=(f"object {object_id}: {problem}" if problem else None) or sentence_problem(sentence),
                file_name=file_name,
            )
            for index, sentence in enumerate(sentences)
        ]
