"""Prompt tools: provenance of candidates, the workspace's append, region_prompt (the offline
twin of sam_prompt) on scenes its proposer misses, and the invocation path (checks, cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from helpers_scenes import iou, ious

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.tracing import Tracer
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.coords import Frame, View
from tools.errors import ToolError
from tools.offline.missed_scenes import halo_scene
from tools.offline.region_prompt import RegionPrompt
from tools.offline.region_propose import RegionPropose
from tools.registry import ToolRegistry
from tools.types import Image, Proposals, Ranking


def _props(n: int, source: str = "grid") -> Proposals:
    masks = np.zeros((n, 4, 6), bool)
    for i in range(n):
        masks[i, :, i] = True
    return Proposals.from_masks(masks, source=source)


def test_origins_default_to_the_source_and_survive_the_record() -> None:
    grid = _props(3)
    assert grid.origins.tolist() == ["grid"] * 3 and not grid.mixed_origins
    arrays, meta = grid.to_record()
    assert "origins" not in meta  # a plain proposer's record is what it was before origins
    assert Proposals.from_record(arrays, meta).origins.tolist() == ["grid"] * 3
    drawn = Proposals.from_masks(np.eye(4, 6, 5, dtype=bool)[None], source="p", origins=["p:box"])
    merged = grid.append(drawn)
    assert merged.origins.tolist() == ["grid", "grid", "grid", "p:box"] and merged.mixed_origins
    back = Proposals.from_record(*merged.to_record())
    assert back.origins.tolist() == merged.origins.tolist() and back.digest == merged.digest
    assert merged.summary()["origins"] == {"grid": 3, "p:box": 1}
    with pytest.raises(ValueError, match="2 origins for 1 masks"):
        Proposals.from_masks(np.zeros((1, 2, 2), bool), origins=["a", "b"])


def test_append_skips_masks_already_there_and_keeps_indices() -> None:
    grid = _props(3)
    again = Proposals.from_masks(grid.masks[1:2], source="p", origins=["p:points"])
    assert grid.append(again) is grid and grid.find(again.masks[0]) == 1
    new = np.zeros((1, 4, 6), bool)
    new[0, 0, :] = True
    twice = Proposals.from_masks(np.concatenate([new, new]), source="p")
    merged = grid.append(twice)
    assert len(merged) == 4 and merged.find(new[0]) == 3 and merged.areas[3] == 6
    with pytest.raises(ValueError, match="cannot append"):
        grid.append(Proposals.from_masks(np.zeros((1, 5, 5), bool)))


def test_workspace_append_drops_the_rankings_of_the_old_candidates() -> None:
    ws = Workspace(image=Image.from_array(np.zeros((4, 6, 3), np.uint8)), expression="x")
    with pytest.raises(ToolError, match="call the propose tool first"):
        ws.add_proposals(_props(1))
    grid = _props(3)
    ws.set_proposals(grid)
    ranking = Ranking.from_scores(np.array([3.0, 0.0, 0.0]), "x", 1.0, grid.digest)
    ws.set_ranking(ranking)
    assert ws.add_proposals(Proposals.from_masks(grid.masks[:1])) is False  # nothing new
    assert ws.ranking is ranking and ws.best_ranking is ranking
    new = np.zeros((1, 4, 6), bool)
    new[0, 0] = True
    assert ws.add_proposals(Proposals.from_masks(new, source="p")) is True
    assert ws.ranking is None and ws.best_ranking is None and len(ws.proposals or ()) == 4


def _run(coro: Any) -> Any:
    return anyio.run(lambda: coro)


def _ready(seed: int) -> tuple[Any, Workspace]:
    ms = halo_scene(seed)
    ws = Workspace(image=Image.from_array(ms.scene.image), expression="the object")
    ws.set_proposals(_run(RegionPropose()(ws, RegionPropose.Params())))
    return ms, ws


@pytest.mark.parametrize("seed", [1, 4, 6])
def test_region_prompt_recovers_the_object_the_proposer_merged(seed: int) -> None:
    ms, ws = _ready(seed)
    assert ious(ws.proposals.masks, ms.target.mask).max() < 0.9  # the proposer missed it
    tool = RegionPrompt()
    x0, y0, x1, y1 = ms.box_xyxy
    by_box = _run(tool(ws, tool.Params(box=[x0, y0, x1, y1])))
    assert by_box.origins.tolist() == ["region_prompt:box"] and by_box.source == "region_prompt"
    assert iou(by_box.masks[0], ms.target.mask) > 0.99 and by_box.scores[0] > 0.9
    ys, xs = np.nonzero(ms.target.mask)
    inside = [float(xs[len(xs) // 2]), float(ys[len(ys) // 2])]
    by_point = _run(tool(ws, tool.Params(points=[inside])))
    assert iou(by_point.masks[0], ms.target.mask) > 0.99
    assert by_point.origins.tolist() == ["region_prompt:points"]
    with_box = _run(tool(ws, tool.Params(box=[x0, y0, x1, y1], points=[inside])))
    assert with_box.origins.tolist() == ["region_prompt:box+points"]
    assert iou(with_box.masks[0], ms.target.mask) > 0.99
    # A background point on the same region takes it away again: nothing left to add.
    with pytest.raises(ToolError, match="region_prompt drew nothing for this points"):
        _run(tool(ws, tool.Params(points=[inside, inside], labels=[1, 0])))


def test_region_prompt_reads_coordinates_in_the_view_the_vlm_saw() -> None:
    ms, ws = _ready(1)
    x0, y0, x1, y1 = ms.box_xyxy
    tool = RegionPrompt()
    ws.set_view(View(Frame(160, 120, "view")))  # the VLM saw the image at half size
    half = _run(tool(ws, tool.Params(box=[x0 / 2, y0 / 2, x1 / 2, y1 / 2])))
    assert iou(half.masks[0], ms.target.mask) > 0.99
    ws.set_view(View(Frame(160, 120, "view"), "norm1000"))
    w, h = ms.scene.image.shape[1], ms.scene.image.shape[0]
    norm = [x0 * 1000 / w, y0 * 1000 / h, x1 * 1000 / w, y1 * 1000 / h]
    assert iou(_run(tool(ws, tool.Params(box=norm))).masks[0], ms.target.mask) > 0.99


def _invoke(invoker: Invoker, name: str, ws: Workspace, args: dict[str, Any]) -> Any:
    ctx = CallContext(costs=CostBook(), log=Tracer(None).bind(sample_id="t"))
    return anyio.run(lambda: invoker.call(name, ws, args, ctx))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "give a box"),
        ({"box": "10,20,30,40"}, "box: Input should be a valid list"),
        ({"box": ["a", 1, 2, 3]}, r"box\.0: Input should be a valid number"),
        ({"box": [1, 2, 3]}, "box: List should have at least 4 items"),
        ({"box": [50, 40, 10, 80]}, "inverted or has zero area"),
        ({"box": [400, 300, 500, 400]}, "outside the image"),
        ({"points": [[10, 10]], "labels": [1, 1]}, "1 point.* but 2 label"),
        ({"points": [[10, 10]], "labels": [0]}, "at least one point must be on the object"),
        ({"points": [[1000, 10]]}, r"point \[1000, 10\] lies outside"),
        ({"box": [10, 10, 50, 50], "labels": [1]}, "labels were given without points"),
    ],
)
def test_bad_prompts_come_back_as_tool_errors(args: dict[str, Any], message: str) -> None:
    _, ws = _ready(1)
    invoker = Invoker(ToolRegistry(ToolSettings()))
    with pytest.raises(ToolError, match=message):
        _invoke(invoker, "region_prompt", ws, args)
    assert ws.ranking is None and len(ws.proposals or ()) > 0  # nothing appended


def test_prompts_are_cached_by_image_candidates_and_prompt(tmp_path: Path) -> None:
    ms, ws = _ready(1)
    registry = ToolRegistry(ToolSettings())
    invoker = Invoker(registry, ToolCache(tmp_path / "cache"))
    tool = registry.get("region_prompt")
    assert isinstance(tool, RegionPrompt)
    box = [float(v) for v in ms.box_xyxy]
    n = len(ws.proposals or ())
    first = _invoke(invoker, "region_prompt", ws, {"box": box})
    assert tool.computes == 1 and len(ws.proposals or ()) == n + 1
    # The same box again, on the candidates it is now part of: another key (other
    # candidates), same mask, nothing appended twice.
    _invoke(invoker, "region_prompt", ws, {"box": box})
    assert tool.computes == 2 and len(ws.proposals or ()) == n + 1
    # Another episode, same image and candidates, the box given in a half-size view: the
    # same prompt in working pixels, a cache hit.
    _, other = _ready(1)
    other.set_view(View(Frame(160, 120)))
    again = _invoke(invoker, "region_prompt", other, {"box": [v / 2 for v in box]})
    assert tool.computes == 2 and np.array_equal(again.masks, first.masks)
    _invoke(invoker, "region_prompt", other, {"box": [box[0] / 2 + 1, *[v / 2 for v in box[1:]]]})
    assert tool.computes == 3  # another box: computed


def test_proposers_name_their_prompt_twins() -> None:
    registry = ToolRegistry(ToolSettings())
    assert registry.tool_class("region_propose").prompt_tool == "region_prompt"
    assert registry.tool_class("sam_propose").prompt_tool == "sam_prompt"
    assert registry.tool_class("region_prompt").role == "prompt"
    assert registry.tool_class("sam_prompt").role == "prompt"
    schema = registry.tool_class("region_prompt").parameters_schema()["properties"]
    assert "image you were shown" in schema["box"]["description"]
