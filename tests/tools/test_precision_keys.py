"""Precision through the disk cache: a bf16 result never answers an fp32 request, for
sam_propose, clip_rank and sam_prompt; and sam_prompt decodes at sam_propose's precision.

Tolerance of sam_prompt's bf16 mask against fp32 (tiny SAM, random weights, one box): IoU
>= 0.98 (measured: 0.996); the predicted IoU moves by a bf16-sized amount (0 < diff < 0.02).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers_sam import best_match_ious

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.tracing import Tracer
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.clip_loading import register_tiny_clip
from tools.offline.missed_scenes import halo_scene
from tools.registry import ToolRegistry
from tools.types import Image

OPEN = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0, "points_per_side": 4}
BOX = [20.0, 20.0, 200.0, 150.0]


def _registry(precision: str) -> ToolRegistry:
    settings = ToolSettings(
        weights="random",
        clip_model=register_tiny_clip(),
        precision=precision,  # type: ignore[arg-type]
        options={"sam_propose": {"config": "tiny"}},
    )
    return ToolRegistry(settings, plugins=False)


def _episode(registry: ToolRegistry, cache: ToolCache) -> tuple[CostBook, Any]:
    """sam_propose, clip_rank and sam_prompt on one image, through the invoker and the cache."""
    invoker = Invoker(registry, cache)
    costs = CostBook()
    ctx = CallContext(costs=costs, log=Tracer(None).bind(sample_id="t"))
    ws = Workspace(image=Image.from_array(halo_scene(1).scene.image), expression="the object")

    async def calls() -> Any:
        await invoker.call("sam_propose", ws, OPEN, ctx)
        await invoker.call("clip_rank", ws, {}, ctx)
        return await invoker.call("sam_prompt", ws, {"box": BOX}, ctx)

    return costs, anyio.run(calls)


def _hits(costs: CostBook) -> dict[str, int]:
    return {name: costs.tools[name].cache_hits for name in ("sam_propose", "clip_rank", "sam_prompt")}


@pytest.mark.slow
def test_a_bf16_result_never_answers_an_fp32_request(tmp_path: Path) -> None:
    with ToolCache(tmp_path / "cache") as cache:
        costs, _ = _episode(_registry("bf16"), cache)
        assert _hits(costs) == {"sam_propose": 0, "clip_rank": 0, "sam_prompt": 0}
        fp32 = _registry("fp32")
        costs, _ = _episode(fp32, cache)  # the bf16 entries are there, under other keys
        assert _hits(costs) == {"sam_propose": 0, "clip_rank": 0, "sam_prompt": 0}
        assert fp32.get("sam_propose").encodes == 1  # type: ignore[attr-defined]
        assert fp32.get("sam_prompt").decodes == 1  # type: ignore[attr-defined]
        costs, _ = _episode(_registry("fp32"), cache)  # while the cache does answer its own precision
        assert _hits(costs) == {"sam_propose": 1, "clip_rank": 1, "sam_prompt": 1}


@pytest.mark.parametrize("name", ["sam_propose", "clip_rank", "sam_prompt"])
def test_each_tool_names_its_precision_in_the_fingerprint(name: str) -> None:
    fp32 = _registry("fp32").get(name).fingerprint()
    assert not fp32.endswith((":bf16", ":fp16"))
    for precision in ("bf16", "fp16"):
        assert _registry(precision).get(name).fingerprint() == f"{fp32}:{precision}"


def test_sam_prompt_decodes_at_the_proposers_precision(tmp_path: Path) -> None:
    with ToolCache(tmp_path / "a") as a, ToolCache(tmp_path / "b") as b:
        _, ref = _episode(_registry("fp32"), a)
        _, out = _episode(_registry("bf16"), b)
    assert out.masks.dtype == bool and out.masks.shape == ref.masks.shape and ref.masks.any()
    assert best_match_ious(ref.masks, out.masks).min() >= 0.98
    diff = abs(float(out.scores[0]) - float(ref.scores[0]))
    assert 0 < diff < 0.02, diff  # autocast did run, and stayed close
