"""Small RefCOCO-M-shaped parquet files for tests and demos, in the hub's exact schema."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.rle import encode_rle


def refcocom_features() -> Any:
    """The ``datasets.Features`` of ``moondream/refcoco-m`` (from its dataset card)."""
    from datasets import Features, List, Value
    from datasets import Image as ImageFeature

    return Features(
        {
            "image": ImageFeature(),
            "image_id": Value("int64"),
            "file_name": Value("string"),
            "samples": List(
                {
                    "id": Value("int64"),
                    "image_id": Value("int64"),
                    "category": Value("string"),
                    "supercategory": Value("string"),
                    "label": Value("string"),
                    "sentences": List(Value("string")),
                    "bbox": List(Value("float32")),
                    "mask": {"counts": Value("string"), "size": List(Value("int32"))},
                }
            ),
        }
    )


def _image_cell(image: np.ndarray | bytes | Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The ``image`` cell: encoded bytes, or ``{"path": ...}`` as given (no bytes)."""
    if isinstance(image, Mapping):
        return {"bytes": None, "path": str(image["path"])}
    return {"bytes": _encode_image(image, fmt), "path": None}


def _encode_image(image: np.ndarray | bytes, fmt: str) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    buf = io.BytesIO()
    PILImage.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _bbox_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]


def _sample(image_id: int, s: Mapping[str, Any]) -> dict[str, Any]:
    mask = s["mask"]
    if isinstance(mask, np.ndarray):
        rle, bbox = encode_rle(mask), _bbox_of(mask)
    else:  # an RLE dict (or None) written as given: lets tests write broken rows
        rle, bbox = mask, [0.0, 0.0, 0.0, 0.0]
    category = s.get("category", "object")
    return {
        "id": int(s["id"]),
        "image_id": image_id,
        "category": category,
        "supercategory": s.get("supercategory", ""),
        "label": s.get("label", category),
        "sentences": list(s["sentences"]),
        "bbox": [float(v) for v in s.get("bbox", bbox)],
        "mask": rle,
    }


def write_refcocom_parquet(
    path: str | Path, rows: Sequence[Mapping[str, Any]], *, image_format: str = "PNG"
) -> Path:
    """Write ``rows`` as a parquet file in RefCOCO-M's schema (via ``datasets``, like the hub).

    Each row: ``{"image": (H, W, 3) uint8 array, encoded bytes or {"path": str}, "image_id": int,
    "file_name": str (optional), "samples": [{"id": int, "sentences": [str],
    "mask": (H, W) bool array or an RLE dict, "category": str (optional),
    "bbox": [x, y, w, h] (optional; computed from an array mask)}]}``.
    PNG (the default) keeps pixels exact; ``image_format="JPEG"`` mimics COCO files.

    Returns:
        The path written.
    """
    from datasets import Dataset

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {"image": [], "image_id": [], "file_name": [], "samples": []}
    for row in rows:
        image_id = int(row["image_id"])
        columns["image"].append(_image_cell(row["image"], image_format))
        columns["image_id"].append(image_id)
        columns["file_name"].append(row.get("file_name", f"COCO_train2014_{image_id:012d}.jpg"))
        columns["samples"].append([_sample(image_id, s) for s in row["samples"]])
    # A batch size of its own: datasets would otherwise stat every image path to size batches.
    Dataset.from_dict(columns, features=refcocom_features()).to_parquet(str(out), batch_size=1000)
    return out


_COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def demo_rows(n_images: int = 3, seed: int = 0, height: int = 48, width: int = 64) -> list[dict[str, Any]]:
    """Rows of small images with two coloured boxes each, two expressions per box.

    Exact masks, for smoke runs of the bench without the real data set.
    """
    rng = np.random.default_rng(seed)
    rows = []
    names = list(_COLORS)
    for i in range(n_images):
        image = rng.integers(90, 140, size=(height, width, 3), dtype=np.uint8)
        picked = rng.choice(len(names), size=2, replace=False)
        samples = []
        for j, (c, side) in enumerate(zip(picked, ("left", "right"), strict=True)):
            color = names[int(c)]
            mask = np.zeros((height, width), dtype=bool)
            x0 = (2 if side == "left" else width // 2 + 2) + int(rng.integers(0, 4))
            y0 = int(rng.integers(2, height // 2))
            mask[y0 : y0 + height // 3, x0 : x0 + width // 3] = True
            image[mask] = _COLORS[color]
            samples.append(
                {
                    "id": 100 * (i + 1) + j,
                    "category": "box",
                    "sentences": [f"the {color} box", f"{color} box on the {side}"],
                    "mask": mask,
                }
            )
        rows.append({"image": image, "image_id": i + 1, "samples": samples})
    return rows
