"""``jsonl``: your own data, one expression per line of a JSONL file.

Each line is a JSON object with ``image`` (a path relative to the file's folder),
``expression``, and the target in exactly one of four forms::

    {"image": "img/a.jpg", "expression": "the red mug", "mask": {"size": [H, W], "counts": "..."}}
    {"image": "img/a.jpg", "expression": "the left chair", "polygon": [x1, y1, x2, y2, ...]}
    {"image": "img/b.png", "expression": "the dog", "mask_png": "masks/b_dog.png"}
    {"image": "img/b.png", "expression": "the unicorn", "none": true}

``mask`` is COCO RLE (compressed ``counts`` string or uncompressed list); ``polygon`` one flat
polygon or a list of them in pixels (drawn as COCO draws polygons); ``mask_png`` a PNG whose
nonzero pixels are the target; ``none: true`` says the expression refers to nothing. An optional
``id`` names the example (default: its line number). Consecutive lines of one image form one
image group (the image is decoded once for them). Image and mask paths stay inside the file's
folder. Scored by :data:`bench.data.protocols.GRES` (gIoU, cIoU, N-acc, T-acc): the tag
``target`` is ``none`` or ``some``.

The file is read line by line. A line that is not a JSON object with ``image`` and
``expression`` is counted with its reason (``dropped``); a line with a bad or missing target
keeps its example, failed with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import Example, MaskSource, sentence_problem
from bench.data.files import FileImage, image_path
from bench.data.masks import CocoMask, as_polygons, segmentation_problem
from bench.data.protocols import GRES, NO_TARGET, TARGET_TAG
from bench.data_errors import DatasetError

TARGET_FORMS = ("mask", "polygon", "mask_png", "none")


def _first_object(path: Path) -> Mapping[str, Any] | None:
    try:
        with path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    value = json.loads(raw)
                    return value if isinstance(value, Mapping) else None
    except (OSError, ValueError):
        return None
    return None


class JsonlAdapter(DatasetAdapter):
    """Your own data (see the module docstring)."""

    name = "jsonl"
    description = "your own data: a JSONL file, one expression per line with its image and target"
    naming = "a .jsonl file whose lines hold image, expression and one of mask, polygon, mask_png, none"
    protocol = GRES

    def detects(self, path: Path) -> bool:
        first = _first_object(path) if path.is_file() and path.suffix == ".jsonl" else None
        return first is not None and "image" in first and "expression" in first

    def open(self, source: str, request: DataRequest) -> DataSource:
        return JsonlSource(self, source, request)


class JsonlSource(DataSource):
    """The file's lines, streamed; consecutive lines of one image are one group."""

    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest):
        self.path = Path(source).expanduser()
        if not self.path.is_file():
            raise DatasetError(f"{source}: no such file; pass a .jsonl file")
        self.root = self.path.parent
        super().__init__(adapter, source, request, files=[self.path])
        self.total_images = sum(1 for _ in self._runs())  # a first read: the image groups

    def _lines(self) -> Iterator[tuple[int, Mapping[str, Any] | None]]:
        """``(line number, object)``; the object is ``None`` for a line that is not one."""
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw)
                except ValueError:
                    yield number, None
                    continue
                ok = isinstance(value, Mapping) and isinstance(value.get("image"), str)
                yield number, value if ok and "expression" in value else None

    def _runs(self) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
        """Runs of consecutive readable lines naming one image."""
        run: list[tuple[int, Mapping[str, Any]]] = []
        for number, line in self._lines():
            if line is None:
                self.drop("lines_without_image_and_expression")
                continue
            if run and line["image"] != run[0][1]["image"]:
                yield run
                run = []
            run.append((number, line))
        if run:
            yield run

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        for position, run in enumerate(self._runs()):
            if wanted is None or position in wanted:
                yield position, [self._example(number, line) for number, line in run]

    def _target(self, line: Mapping[str, Any]) -> tuple[MaskSource | None, str | None]:
        """The line's target and, when it has no usable one, why."""
        given = [form for form in TARGET_FORMS if line.get(form) not in (None, False)]
        if len(given) != 1:
            found = ", ".join(given) or "none of them"
            return None, f"a line needs exactly one target of {', '.join(TARGET_FORMS)} (found {found})"
        form, value = given[0], line[given[0]]
        if form == "none":
            return CocoMask(()), None
        if form == "mask_png":
            return (
                (self._png_reader(str(value)), None)
                if isinstance(value, str)
                else (None, "mask_png is not a path")
            )
        segmentation = as_polygons(value)
        problem = segmentation_problem(segmentation)
        if problem is not None:
            return None, f"{form}: {problem}"
        if form == "mask" and not isinstance(value["counts"], list):
            return dict(value), None  # compressed RLE: decoded as it is
        return CocoMask((segmentation,)), None

    def _png_reader(self, name: str) -> Any:
        root, allow = self.root, self.request.allow_outside_paths

        def read() -> np.ndarray:  # read when the example is scored
            with PILImage.open(image_path(name, root, allow, f"mask_png {name!r}")) as img:
                return np.asarray(img.convert("L")) > 0

        return read

    def _example(self, number: int, line: Mapping[str, Any]) -> Example:
        image = str(line["image"])
        sentence = line.get("expression")
        mask, problem = self._target(line)
        sample_id = str(line.get("id") or number)
        return Example(
            example_id=f"{image}:{sample_id}:0",
            image_id=image,
            sample_id=sample_id,
            sentence=sentence if isinstance(sentence, str) else "",
            sentence_index=0,
            category=str(line.get("category") or ""),
            bbox_xywh=None,
            source=self.source,
            image_ref=FileImage(image, self.root, f"image {image}", self.request.allow_outside_paths),
            mask_ref=mask,
            error=(f"line {number}: {problem}" if problem else None) or sentence_problem(sentence),
            file_name=image,
            tags={TARGET_TAG: NO_TARGET if line.get("none") else "some"},
        )
