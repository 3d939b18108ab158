# refseg_example_plugins/dataset.py
"""A folder of PNG images and PNG masks with their expressions, scored by mean Dice.

FOLDER/annotations.json: {"images": [{"file": "a.png", "objects": [{"mask": "a_0.png",
"expressions": ["the red star", ...]}]}]}, the PNG files beside it.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data import (
    CIOU,
    MIOU,
    Breakdown,
    DatasetAdapter,
    DataSource,
    EvalProtocol,
    Example,
    FileImage,
    Metric,
    image_path,
    score_masks,
    sentence_problem,
)


def score_with_dice(pred, truth):
    """The built-in pixel counts, plus a per-example number of this protocol's own."""
    base = score_masks(pred, truth)
    total = base.pred_area + base.gt_area
    return replace(base, extra={"dice": 1.0 if total == 0 else 2 * base.inter / total})


MASK_DICE = EvalProtocol(
    name="mask-dice",
    description="mean Dice per expression (headline), mIoU and cIoU; by expression length",
    metrics=(
        Metric(
            "dice",
            "Dice",
            "mean Dice 2|P&G|/(|P|+|G|) over expressions",
            numerator=lambda rec: rec.scores.get("dice", 0.0),
        ),  # a failed example counts 0
        MIOU,
        CIOU,
    ),
    headline="dice",
    breakdowns=(
        Breakdown(
            "length",
            "expression length",
            group=lambda rec: rec.tags.get("length"),
            groups=("short", "long"),
            metrics=("dice", "miou"),
        ),
    ),
    scorer=score_with_dice,
)


class MaskFolderAdapter(DatasetAdapter):
    name = "mask-folder"
    description = "a folder of PNG images and PNG masks with their expressions"
    naming = "a folder holding annotations.json"
    protocol = MASK_DICE

    def detects(self, path):
        return path.is_dir() and (path / "annotations.json").is_file()

    def open(self, source, request):
        return MaskFolderSource(self, source, request)


class MaskFolderSource(DataSource):
    def __init__(self, adapter, source, request):
        self.root = Path(source)
        self.images = json.loads((self.root / "annotations.json").read_text())["images"]
        super().__init__(
            adapter, source, request, total_images=len(self.images), files=[self.root / "annotations.json"]
        )

    def image_groups(self, wanted):  # one image at a time, in file order
        for position, entry in enumerate(self.images):
            if wanted is None or position in wanted:
                yield position, list(self.examples(entry))

    def examples(self, entry):
        image_id = Path(entry["file"]).stem
        image = FileImage(entry["file"], self.root, f"image {image_id}", self.request.allow_outside_paths)
        for j, obj in enumerate(entry["objects"]):
            if not obj["expressions"]:
                self.drop("objects_without_expressions")  # counted in summary.json, never hidden
            for k, text in enumerate(obj["expressions"]):
                yield Example(
                    example_id=f"{image_id}:{j}:{k}",
                    image_id=image_id,
                    sample_id=str(j),
                    sentence=text,
                    sentence_index=k,
                    category="object",
                    bbox_xywh=None,
                    source=self.source,
                    image_ref=image,
                    mask_ref=self.mask_reader(obj["mask"]),
                    error=sentence_problem(text),
                    tags={"length": "long" if len(text.split()) > 3 else "short"},
                )

    def mask_reader(self, name):
        def read():  # read when the example is scored, not while streaming
            with Image.open(image_path(name, self.root, self.request.allow_outside_paths, name)) as img:
                return np.asarray(img.convert("L")) > 127

        return read
