"""The real-model path end to end: tiny SAM and CLIP built from the real classes, through
the session, the invoker and the disk cache."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np

from agent.episode import EpisodeConfig
from agent.session import Session
from cache import ToolCache
from tools.base import ToolSettings
from tools.clip_loading import register_tiny_clip
from tools.registry import ToolRegistry
from tools.types import Image

# Random weights: keep every mask, as `--weights random` does on the command line.
PROPOSE = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


def tiny_registry() -> ToolRegistry:
    settings = ToolSettings(
        weights="random",
        clip_model=register_tiny_clip(),
        options={"sam_propose": {"config": "tiny"}},
    )
    return ToolRegistry(settings, plugins=False)


def image() -> Image:
    rng = np.random.default_rng(3)
    return Image.from_array(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))


def run_loop(registry: ToolRegistry, cache: ToolCache, text: str) -> tuple:
    config = EpisodeConfig(controller="loop", max_iter=2, tau_conf=1.0, propose_args=PROPOSE)
    session = Session(registry, config, cache=cache)
    return anyio.run(session.run, image(), text, "s")


def test_second_run_is_served_from_disk_with_no_model_compute(tmp_path: Path) -> None:
    first_registry = tiny_registry()
    with ToolCache(tmp_path) as cache:
        first = run_loop(first_registry, cache, "the black dog")
    sam, clip = first_registry.get("sam_propose"), first_registry.get("clip_rank")
    assert first.ok and first.n_proposals > 1 and first.mask is not None
    assert sam.encodes == 1 and clip.image_forwards == 1  # one embedding per image, re-ranks reuse it
    assert first.costs.calls("clip_rank") == first.iterations + 1 >= 2

    second_registry = tiny_registry()  # a new process would start like this
    with ToolCache(tmp_path) as cache:
        second = run_loop(second_registry, cache, "the black dog")
    assert second_registry.get("sam_propose").encodes == 0  # type: ignore[attr-defined]
    assert second_registry.get("clip_rank").image_forwards == 0  # type: ignore[attr-defined]
    assert second.costs.tools["sam_propose"].cache_hits == 1
    assert second.chosen == first.chosen and second.queries == first.queries
    np.testing.assert_array_equal(second.mask, first.mask)
