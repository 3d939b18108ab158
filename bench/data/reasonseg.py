"""``reasonseg``: ReasonSeg (reasoning segmentation, LISA) from its folder layout.

Each image file has a same-named ``.json`` beside it (LabelMe-style)::

    {"text": ["What in this kitchen keeps food cold?", ...],   # the queries (or one string)
     "is_sentence": true,                                      # long sentences, else short phrases
     "shapes": [{"label": "target", "points": [[x, y], ...]},  # polygons in pixels
                {"label": "ignore", "points": [...]}]}

``--dataset`` names the folder of one split, or the ReasonSeg folder holding ``train/``,
``val/`` and ``test/`` (then ``--split``, default ``val``). One :class:`Example` per (image,
query); LISA's own evaluation takes each image's first query only: ``--per-image first`` is
that protocol. The target and the ``ignore`` region are drawn as LISA's reference code draws
them (:class:`bench.data.masks.LabelledPolygons`); ignored pixels are left out of scoring. Each
example's tag ``query`` is ``long`` (``is_sentence``) or ``short``. Scored by
:data:`bench.data.protocols.REASONSEG` (gIoU, cIoU, both by query kind).

Annotation files are read one at a time, in name order; one that is not JSON, or holds no
query, is counted with its reason (``dropped``), never lost silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import Example, sentence_problem
from bench.data.files import FileImage
from bench.data.masks import labelled_polygons, shape_problem
from bench.data.protocols import QUERY_TAG, REASONSEG
from bench.data_errors import DatasetError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:  # some of the release's files are cp1252 (LISA reads them so too)
        return json.loads(path.read_text(encoding="cp1252"))


def is_annotation(path: Path) -> bool:
    """A ReasonSeg annotation file: JSON with ``text`` and ``shapes``."""
    try:
        data = _read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(data, Mapping) and "text" in data and "shapes" in data


def split_folder(path: Path, split: str | None) -> Path | None:
    """The folder of annotation files: ``path`` itself, or its ``split`` subfolder."""
    if not path.is_dir():
        return None
    first = next(iter(sorted(path.glob("*.json"))), None)
    if first is not None:
        return path if is_annotation(first) else None
    if split is not None and (path / split).is_dir():
        return split_folder(path / split, None)
    return None


class ReasonSegAdapter(DatasetAdapter):
    """ReasonSeg (see the module docstring)."""

    name = "reasonseg"
    description = "ReasonSeg: reasoning queries, polygons labelled target or ignore (LabelMe JSON per image)"
    naming = "a folder of images with same-named .json (text, is_sentence, shapes), or of train/ val/ test/"
    default_split = "val"
    protocol = REASONSEG

    def detects(self, path: Path) -> bool:
        return any(split_folder(path, s) is not None for s in (None, *SPLITS))

    def open(self, source: str, request: DataRequest) -> DataSource:
        return ReasonSegSource(self, source, request)


class ReasonSegSource(DataSource):
    """One annotation file (image) at a time, in name order."""

    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest):
        self.root = Path(source).expanduser()
        split = adapter.split_of(request)
        folder = split_folder(self.root, split)
        if folder is None:
            raise DatasetError(
                f"{source}: no ReasonSeg annotation files (.json with text and shapes) here or in {split}/"
            )
        self.folder = folder
        self.annotations = sorted(folder.glob("*.json"))
        names = {p.name for p in folder.iterdir()}
        self.image_names = {
            a.stem: next((a.stem + s for s in IMAGE_SUFFIXES if a.stem + s in names), a.stem + ".jpg")
            for a in self.annotations
        }
        super().__init__(adapter, source, request, total_images=len(self.annotations), files=self.annotations)

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        for position, path in enumerate(self.annotations):
            if wanted is None or position in wanted:
                yield position, self._examples(path)

    def _examples(self, path: Path) -> list[Example]:
        try:
            data = _read_json(path)
        except (OSError, ValueError):
            self.drop("annotation_files_not_json")
            return []
        if not isinstance(data, Mapping):
            self.drop("annotation_files_not_json")
            return []
        queries = data.get("text")
        queries = [queries] if isinstance(queries, str) else list(queries or [])
        if not queries:
            self.drop("annotation_files_without_text")
            return []
        shapes = data.get("shapes")
        problem = shape_problem(shapes)
        target = ignore = None
        if problem is None:
            target, ignore = labelled_polygons(list(shapes or []))
            if not any("ignore" in label.lower() for label, _ in ignore.shapes):
                ignore = None
        image_id = path.stem
        relative = (self.folder / self.image_names[image_id]).relative_to(self.root)
        image_ref = FileImage(str(relative), self.root, f"image {image_id}", self.request.allow_outside_paths)
        kind = "long" if data.get("is_sentence") else "short"
        return [
            Example(
                example_id=f"{image_id}:0:{index}",
                image_id=image_id,
                sample_id="0",
                sentence=query if isinstance(query, str) else "",
                sentence_index=index,
                category="",
                bbox_xywh=None,
                source=self.source,
                image_ref=image_ref,
                mask_ref=target,
                ignore_ref=ignore,
                error=(f"{path.name}: {problem}" if problem else None) or sentence_problem(query),
                file_name=self.image_names[image_id],
                tags={QUERY_TAG: kind},
            )
            for index, query in enumerate(queries)
        ]
