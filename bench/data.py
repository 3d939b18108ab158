"""Loading evaluation examples: RefCOCO-M (:mod:`bench.refcocom`) or generated scenes.

:func:`load_dataset_spec` takes ``synthetic``, a local parquet file or folder, or a hub data
set name. Examples are :class:`bench.examples.Example` (re-exported here).
"""

from __future__ import annotations

import numpy as np

from bench.examples import (
    ArrayImage,
    Example,
    ExampleSet,
    check_selection,
    group_by_image,
    parse_bbox,
    sentence_problem,
)
from bench.refcocom import HUB_DATASET, load_refcocom
from tools.types import Image

DEFAULT_SYNTHETIC_N = 20

__all__ = [
    "DEFAULT_SYNTHETIC_N",
    "HUB_DATASET",
    "Example",
    "ExampleSet",
    "group_by_image",
    "load_dataset_spec",
    "load_refcocom",
    "load_synthetic",
]


def load_synthetic(n: int = DEFAULT_SYNTHETIC_N, seed: int = 0, *, per_image: str = "all") -> ExampleSet:
    """Examples from generated scenes: one per (scene, object, expression), exact masks.

    Args:
        n: number of scenes.
        seed: scene generator seed (same seed, same scenes).
        per_image: ``"all"`` expressions, or only the ``"first"`` one per scene.
    """
    check_selection(n, per_image)
    from tools.offline.scenes import generate_scenes

    out = ExampleSet()
    for scene in generate_scenes(n, seed):
        image_ref = ArrayImage(Image.from_array(np.asarray(scene.image, dtype=np.uint8)))
        image_id = str(scene.scene_id)
        image_size = image_ref.image.size
        done = False
        for obj in scene.objects:
            mask = np.asarray(obj.mask, dtype=bool)
            mask.setflags(write=False)
            error = None
            if mask.shape != image_size:
                error = f"mask size {mask.shape} does not match the image size {image_size}"
            for index, expression in enumerate(obj.expressions):
                sample_id = str(obj.object_id)
                out.append(
                    Example(
                        example_id=f"{image_id}:{sample_id}:{index}",
                        image_id=image_id,
                        sample_id=sample_id,
                        sentence=expression,
                        sentence_index=index,
                        category=str(obj.shape),
                        bbox_xywh=parse_bbox(obj.bbox_xywh),
                        source="synthetic",
                        image_ref=image_ref,
                        mask_ref=mask,
                        error=error or sentence_problem(expression),
                    )
                )
                if per_image == "first":
                    done = True
                    break
            if done:
                break
    return out


def load_dataset_spec(
    spec: str,
    n: int | None = None,
    per_image: str = "all",
    seed: int | None = None,
    *,
    split: str = "validation",
    cache_dir: str | None = None,
    allow_outside_paths: bool = False,
) -> ExampleSet:
    """Load from a spec: ``synthetic``, a local parquet file/folder, or a hub data set name.

    For ``synthetic``, ``n`` is the number of scenes (default 20) and ``seed`` the generator
    seed (default 0). Otherwise see :func:`load_refcocom`.
    """
    if spec == "synthetic":
        return load_synthetic(
            DEFAULT_SYNTHETIC_N if n is None else n, 0 if seed is None else seed, per_image=per_image
        )
    return load_refcocom(
        spec,
        split,
        n=n,
        per_image=per_image,
        seed=seed,
        cache_dir=cache_dir,
        allow_outside_paths=allow_outside_paths,
    )
