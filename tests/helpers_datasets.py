"""Data sets in miniature for the dataset adapter tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tools.offline.scenes import generate_scene


def write_shapes(folder: Path, scenes: int = 2) -> dict[str, np.ndarray]:
    """Generated scenes in the adapter's layout; returns each object's mask by ``scene:object``.
    One object more has no expression (the adapter counts it as dropped)."""
    folder.mkdir(parents=True)
    images, masks = [], {}
    for s in range(scenes):
        scene = generate_scene(s)
        Image.fromarray(np.asarray(scene.image, dtype=np.uint8)).save(folder / f"scene{s}.png")
        objects: list[dict[str, Any]] = []
        for j, obj in enumerate(scene.objects):
            name = f"scene{s}_{j}.png"
            Image.fromarray(np.asarray(obj.mask, dtype=np.uint8) * 255).save(folder / name)
            objects.append({"mask": name, "expressions": list(obj.expressions)})
            masks[f"scene{s}:{j}"] = np.asarray(obj.mask, dtype=bool)
        objects.append({"mask": "scene0_0.png", "expressions": []})
        images.append({"file": f"scene{s}.png", "objects": objects})
    (folder / "annotations.json").write_text(json.dumps({"images": images}))
    return masks
