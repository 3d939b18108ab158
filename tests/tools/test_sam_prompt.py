"""sam_prompt on a tiny real SAM loaded from a state dict saved like the official files: it
decodes on sam_propose's embedding (one encode per image) and draws what segment-anything's
own SamPredictor draws for the same box or points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from segment_anything import SamPredictor
from test_sam_propose import save_tiny_checkpoint

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.tracing import Tracer
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.coords import Frame, View
from tools.offline.missed_scenes import halo_scene
from tools.registry import ToolRegistry
from tools.sam_prompt import SamPrompt
from tools.sam_propose import SamPropose
from tools.types import Image

OPEN = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0, "points_per_side": 4}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ToolRegistry:
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    save_tiny_checkpoint(path, seed=3)
    tiny = {"sam_propose": {"config": "tiny"}}
    return ToolRegistry(ToolSettings(weights="pretrained", sam_checkpoint=path, options=tiny))


def _call(invoker: Invoker, name: str, ws: Workspace, args: dict[str, Any]) -> Any:
    ctx = CallContext(costs=CostBook(), log=Tracer(None).bind(sample_id="t"))
    return anyio.run(lambda: invoker.call(name, ws, args, ctx))


def _predictor_mask(sam: Any, pixels: np.ndarray, **prompt: Any) -> np.ndarray:
    predictor = SamPredictor(sam)
    predictor.set_image(pixels)
    masks, scores, _ = predictor.predict(**prompt)
    return masks[int(np.argmax(scores))]


def test_box_and_points_draw_what_sam_predictor_draws_with_one_encode(
    registry: ToolRegistry, tmp_path: Path
) -> None:
    ms = halo_scene(1)
    image = Image.from_array(ms.scene.image)
    ws = Workspace(image=image, expression="the object")
    invoker = Invoker(registry, ToolCache(tmp_path / "cache"))
    proposer, prompt = registry.get("sam_propose"), registry.get("sam_prompt")
    assert isinstance(proposer, SamPropose) and isinstance(prompt, SamPrompt)
    assert prompt.proposer is proposer  # the registry handed over the instance it needs
    assert prompt.fingerprint() == proposer.fingerprint()
    _call(invoker, "sam_propose", ws, OPEN)
    n = len(ws.proposals or ())
    box = [float(v) for v in ms.box_xyxy]
    drawn = _call(invoker, "sam_prompt", ws, {"box": box})
    points = _call(invoker, "sam_prompt", ws, {"points": [[150.5, 80.25], [20.0, 30.0]], "labels": [1, 0]})
    assert proposer.encodes == 1 and prompt.decodes == 2  # both decoded on the proposer's embedding
    assert drawn.origins.tolist() == ["sam_prompt:box"] and points.origins.tolist() == ["sam_prompt:points"]
    assert len(ws.proposals or ()) == n + 2 and ws.proposals is not None
    assert ws.proposals.origins[-2:].tolist() == ["sam_prompt:box", "sam_prompt:points"]
    sam = proposer.model
    want_box = _predictor_mask(sam, image.pixels, box=np.array(box), multimask_output=False)
    want_points = _predictor_mask(
        sam, image.pixels, point_coords=np.array([[150.5, 80.25], [20.0, 30.0]]),
        point_labels=np.array([1, 0]), multimask_output=True,
    )  # fmt: skip
    assert np.array_equal(drawn.masks[0], want_box) and want_box.any()
    assert np.array_equal(points.masks[0], want_points) and want_points.any()
    # The same box seen in a downscaled view is the same prompt: a cache hit, no decode.
    other = Workspace(image=image, expression="the object")
    _call(invoker, "sam_propose", other, OPEN)
    other.set_view(View(Frame(160, 120, "view")))
    again = _call(invoker, "sam_prompt", other, {"box": [v / 2 for v in box]})
    assert prompt.decodes == 2 and proposer.encodes == 1 and np.array_equal(again.masks, drawn.masks)


def test_a_new_image_is_encoded_once_for_propose_and_prompt(registry: ToolRegistry) -> None:
    proposer, prompt = registry.get("sam_propose"), registry.get("sam_prompt")
    assert isinstance(proposer, SamPropose) and isinstance(prompt, SamPrompt)
    invoker = Invoker(registry)
    before = proposer.encodes
    ws = Workspace(image=Image.from_array(halo_scene(2).scene.image), expression="x")
    # Two prompts after the proposal: one encode for the three calls.
    ws.set_proposals(anyio.run(lambda: proposer(ws, proposer.Params(**OPEN))))
    for box in ([10.0, 10.0, 120.0, 90.0], [200.0, 100.0, 300.0, 230.0]):
        _call(invoker, "sam_prompt", ws, {"box": box})
    assert proposer.encodes == before + 1


def test_sam_prompt_built_alone_has_its_own_proposer() -> None:
    tool = SamPrompt(ToolSettings(weights="random", options={"sam_propose": {"config": "tiny"}}))
    ws = Workspace(image=Image.from_array(halo_scene(3).scene.image), expression="x")
    ws.set_proposals(anyio.run(lambda: tool.proposer(ws, tool.proposer.Params(**OPEN))))
    out = anyio.run(lambda: tool(ws, tool.Params(box=[20.0, 20.0, 200.0, 150.0])))
    assert out.masks.shape == (1, 240, 320) and tool.proposer.encodes == 1
