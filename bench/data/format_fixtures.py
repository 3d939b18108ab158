"""Miniature data sets in each published layout, from generated scenes (tests and demos).

Each writer puts a few of :func:`tools.offline.scenes.generate_scene`'s scenes (images whose
objects the offline toolset can find) into one layout, every object's target given as the
convex polygon around its mask (so the ground truth is a drawn polygon, as in COCO):

- :func:`write_lmms_refcoco`: a parquet file in the lmms-lab RefCOCO / RefCOCO+ / RefCOCOg layout;
- :func:`write_grefcoco`: ``grefs(unc).json``, ``instances.json`` and ``images/train2014/``,
  with single-object, two-object and no-target expressions;
- :func:`write_reasonseg`: ``val/`` of images with LabelMe JSON (a target and an ignore region);
- :func:`write_own_jsonl`: a JSONL of your own data with all four target forms.

:func:`write_demo_sets` writes all four into one folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.rle import encode_rle
from tools.offline.scenes import COLORS, SHAPES, Scene, SceneObject, generate_scene

SMALL = (96, 128)  # (H, W) of the test scenes


def scenes(n: int, seed: int = 0, size: tuple[int, int] = SMALL) -> list[Scene]:
    """``n`` generated scenes (seeds ``seed .. seed + n - 1``)."""
    return [generate_scene(seed + i, size) for i in range(n)]


def hull_polygon(mask: np.ndarray) -> list[float]:
    """The convex polygon ``[x1, y1, x2, y2, ...]`` around a mask's pixels (their corners)."""
    from scipy.spatial import ConvexHull

    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    hull = ConvexHull(corners.astype(np.float64))
    return [float(v) for i in hull.vertices for v in corners[i]]


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def absent_phrase(scene: Scene) -> str:
    """``the <colour> <shape>`` of a colour and shape no object of the scene has."""
    present = {(o.color, o.shape) for o in scene.objects}
    color, shape = next((c, s) for c in COLORS for s in SHAPES if (c, s) not in present)
    return f"the {color} {shape}"


def _coco_file(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.png"


def lmms_features() -> Any:
    """The ``datasets.Features`` of the lmms-lab RefCOCO sets (from their data set cards)."""
    from datasets import Features, List, Value
    from datasets import Image as ImageFeature

    return Features(
        {
            "question_id": Value("string"),
            "image": ImageFeature(),
            "question": Value("string"),
            "answer": List(Value("string")),
            "segmentation": List(Value("float32")),
            "bbox": List(Value("float32")),
            "iscrowd": Value("int8"),
            "file_name": Value("string"),
        }
    )


def lmms_rows(items: Sequence[Scene]) -> list[dict[str, Any]]:
    """One row per object: two of its expressions, its hull polygon (flat), its box."""
    rows = []
    for i, scene in enumerate(items, start=1):
        image = {"bytes": png_bytes(scene.image), "path": None}
        for obj in scene.objects:
            rows.append(
                {
                    "question_id": str(1000 * i + obj.object_id),
                    "image": image,
                    "question": "Please carefully observe the area circled in the image.",
                    "answer": obj.expressions[:2],
                    "segmentation": hull_polygon(obj.mask),
                    "bbox": [float(v) for v in obj.bbox_xywh],
                    "iscrowd": 0,
                    "file_name": _coco_file(i).replace(".png", ".jpg"),
                }
            )
    return rows


def write_lmms_refcoco(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` (see :func:`lmms_rows`) as a parquet file in the lmms-lab layout."""
    from datasets import Dataset

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = {key: [row[key] for row in rows] for key in lmms_features()}
    Dataset.from_dict(columns, features=lmms_features()).to_parquet(str(out), batch_size=1000)
    return out


def _objects_phrase(objects: Sequence[SceneObject]) -> str:
    return " and ".join(o.expressions[0] for o in objects)


def write_grefcoco(folder: str | Path, items: Sequence[Scene]) -> Path:
    """gRefCOCO's files for ``items`` (split ``val``; one extra ``train`` ref per image):
    per object a ref with two sentences, per image a two-object ref and a no-target ref."""
    root = Path(folder)
    (root / "images" / "train2014").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    categories = [{"id": i + 1, "name": s} for i, s in enumerate(SHAPES)]
    for i, scene in enumerate(items, start=1):
        h, w = scene.image.shape[:2]
        PILImage.fromarray(scene.image).save(root / "images" / "train2014" / _coco_file(i))
        images.append({"id": i, "file_name": _coco_file(i), "height": h, "width": w})
        ids = []
        for obj in scene.objects:
            ann_id = 1000 * i + obj.object_id
            ids.append(ann_id)
            x, y, bw, bh = obj.bbox_xywh
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": i,
                    "segmentation": [hull_polygon(obj.mask)],
                    "bbox": [float(x), float(y), float(bw), float(bh)],
                    "area": float(obj.mask.sum()),
                    "iscrowd": 0,
                    "category_id": SHAPES.index(obj.shape) + 1,
                }
            )
            refs.append(_ref(len(refs), i, [ann_id], obj.expressions[:2], "val"))
        refs.append(_ref(len(refs), i, ids[:2], [_objects_phrase(scene.objects[:2])], "val"))
        refs.append(_ref(len(refs), i, [-1], [absent_phrase(scene)], "val"))
        refs.append(_ref(len(refs), i, ids[-1:], scene.objects[-1].expressions[:1], "train"))
    (root / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (root / "grefs(unc).json").write_text(json.dumps(refs))
    return root


def _ref(ref_id: int, image_id: int, ann_ids: list[int], sentences: list[str], split: str) -> dict[str, Any]:
    return {
        "ref_id": ref_id,
        "image_id": image_id,
        "ann_id": ann_ids,
        "no_target": ann_ids == [-1],
        "split": split,
        "category_id": [],
        "sentences": [{"sent": s, "raw": s, "sent_id": 10 * ref_id + k} for k, s in enumerate(sentences)],
    }


def _points(polygon: list[float]) -> list[list[float]]:
    return [[polygon[k], polygon[k + 1]] for k in range(0, len(polygon), 2)]


def write_reasonseg(folder: str | Path, items: Sequence[Scene]) -> Path:
    """ReasonSeg's ``val/`` for ``items``: each image's first object is the target (a long
    sentence on odd images, short phrases on even ones), its second object an ignore region."""
    split = Path(folder) / "val"
    split.mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(items):
        target, other = scene.objects[0], scene.objects[1]
        name = f"reason_{i:03d}"
        PILImage.fromarray(scene.image).save(split / f"{name}.png")
        long = i % 2 == 1
        text = (
            [f"Which object here would you describe as {target.expressions[0]}? Segment it."]
            if long
            else target.expressions[:2]
        )
        shapes = [
            {"label": "target", "points": _points(hull_polygon(target.mask)), "shape_type": "polygon"},
            {"label": "ignore", "points": _points(hull_polygon(other.mask)), "shape_type": "polygon"},
        ]
        (split / f"{name}.json").write_text(json.dumps({"text": text, "is_sentence": long, "shapes": shapes}))
    return Path(folder)


def write_own_jsonl(folder: str | Path, items: Sequence[Scene]) -> Path:
    """A JSONL of your own data: per image an object as RLE, one as a polygon, one as a PNG
    mask, and an expression with no target. Returns the ``.jsonl`` file."""
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, scene in enumerate(items):
        image = f"images/own_{i:03d}.png"
        PILImage.fromarray(scene.image).save(root / image)
        a, b, c = scene.objects[:3]
        mask_png = f"masks/own_{i:03d}_{c.object_id}.png"
        PILImage.fromarray(c.mask.astype(np.uint8) * 255).save(root / mask_png)
        lines += [
            {"image": image, "expression": a.expressions[0], "mask": encode_rle(a.mask)},
            {"image": image, "expression": b.expressions[0], "polygon": hull_polygon(b.mask)},
            {"image": image, "expression": c.expressions[0], "mask_png": mask_png},
            {"image": image, "expression": absent_phrase(scene), "none": True},
        ]
    path = root / "own.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_demo_sets(folder: str | Path, n: int = 4, seed: int = 0) -> dict[str, Path]:
    """All four miniature data sets of ``n`` scenes (default size 240x320) under ``folder``:
    what ``--dataset`` takes for each."""
    root = Path(folder)
    items = scenes(n, seed, (240, 320))
    return {
        "refcocog": write_lmms_refcoco(root / "refcocog" / "val-00000-of-00001.parquet", lmms_rows(items)),
        "grefcoco": write_grefcoco(root / "grefcoco", items),
        "reasonseg": write_reasonseg(root / "reasonseg", items),
        "jsonl": write_own_jsonl(root / "own", items),
    }
