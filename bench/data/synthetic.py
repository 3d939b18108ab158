"""``synthetic``: generated scenes of coloured shapes with exact masks (no download, no weights).

One example per (scene, object, expression); ``--n`` is the number of scenes (default
:data:`DEFAULT_SYNTHETIC_N`), ``--seed-subset`` the generator's seed (default 0): the same
seed gives the same scenes. Scenes are generated one at a time as they are streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import ArrayImage, Example, ExampleSet, parse_bbox, sentence_problem
from tools.offline.scenes import Scene, generate_scene
from tools.types import Image

DEFAULT_SYNTHETIC_N = 20


class SyntheticAdapter(DatasetAdapter):
    """Generated scenes (see the module docstring)."""

    name = "synthetic"
    description = "generated scenes of coloured shapes with exact masks (offline smoke runs and tests)"
    naming = "synthetic (--n scenes, default 20; --seed-subset S: the generator's seed, default 0)"

    def open(self, source: str, request: DataRequest) -> DataSource:
        # --n is the number of scenes and --seed-subset the generator's seed, not a subset.
        seed = 0 if request.seed_subset is None else request.seed_subset
        scenes = DEFAULT_SYNTHETIC_N if request.n is None else request.n
        return SyntheticSource(self, source, replace(request, n=scenes, seed_subset=None), seed)


class SyntheticSource(DataSource):
    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest, seed: int):
        super().__init__(adapter, source, request, total_images=request.n)
        self.seed = seed
        self.revision = f"seed {seed}"

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        for position in range(self.request.n or 0):
            yield position, scene_examples(generate_scene(self.seed + position))


def scene_examples(scene: Scene) -> list[Example]:
    """The examples of one generated scene."""
    image_ref = ArrayImage(Image.from_array(np.asarray(scene.image, dtype=np.uint8)))
    image_id = str(scene.scene_id)
    image_size = image_ref.image.size
    out = []
    for obj in scene.objects:
        mask = np.asarray(obj.mask, dtype=bool)
        mask.setflags(write=False)
        error = None
        if mask.shape != image_size:
            error = f"mask size {mask.shape} does not match the image size {image_size}"
        sample_id = str(obj.object_id)
        for index, expression in enumerate(obj.expressions):
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
    return out


def load_synthetic(n: int = DEFAULT_SYNTHETIC_N, seed: int = 0, *, per_image: str = "all") -> ExampleSet:
    """Examples from ``n`` generated scenes, in memory (see the module docstring).

    Args:
        n: number of scenes.
        seed: scene generator seed (same seed, same scenes).
        per_image: ``"all"`` expressions, or only the ``"first"`` one per scene.
    """
    request = DataRequest(n=n, per_image=per_image, seed_subset=seed)
    return ExampleSet.of(SyntheticAdapter().open("synthetic", request))
