"""The ``ground`` controller's other paths (VLM failures, odd answers, a drawing that does not
fit the box, guards and budgets) and the agent's prompt tool fed bad boxes, against a
scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_agent_ctl import (
    PROPOSER,
    RANKER,
    EmptyPropose,
    iou,
    make_client,
    make_session,
    run_episode,
    tool_messages,
)

from agent.controller_options import GroundOptions
from agent.episode import EpisodeConfig
from agent.ground_controller import parse_ground_answer
from agent.session import Session
from agent.trace_render import render_trace
from agent.tracing import Tracer
from agent.vlm_profile import VLMProfile
from bench.doubles.scripted_server import Call, ScriptedServer, Spec, Status, Text, ToolCalls
from tools.base import ToolSettings, Workspace
from tools.errors import ConfigError, ToolError
from tools.offline.missed_scenes import MissedScene, halo_scene
from tools.prompting import Prompt, PromptTool
from tools.registry import ToolRegistry
from tools.types import Image


def ground_session(
    client: Any, trace: Path | None = None, registry: ToolRegistry | None = None, **cfg: Any
) -> Session:
    registry = registry or ToolRegistry(ToolSettings(vlm=client))
    options = {k: v for k, v in cfg.items() if k in GroundOptions.model_fields}
    general = {k: v for k, v in cfg.items() if k not in GroundOptions.model_fields}
    config = EpisodeConfig(
        controller="ground",
        proposer=PROPOSER,
        ranker=RANKER,
        **general,
        controller_options={"ground": options},
    )
    return Session(registry, config, tracer=Tracer(trace, run_id="t"))


def scene() -> tuple[MissedScene, Image, str]:
    ms = halo_scene(1)
    return ms, Image.from_array(ms.scene.image), ms.target.expressions_of("paraphrase")[0]


def ground(script: list[Spec], trace: Path | None = None, **cfg: Any) -> tuple[Any, ScriptedServer]:
    _, image, expression = scene()
    with ScriptedServer(script) as srv:
        result = run_episode(ground_session(make_client(srv), trace, **cfg), image, expression)
    return result, srv


class _NeverAsked:
    """A VLM client for an episode that never grounds (max_iter 0): asking it fails the test."""

    async def complete(self, messages: Any, **kwargs: Any) -> Any:
        raise AssertionError("the VLM was asked")

    async def aclose(self) -> None:
        return None


@functools.cache
def oneshot_mask() -> np.ndarray:
    _, image, expression = scene()
    result = run_episode(ground_session(_NeverAsked(), max_iter=0), image, expression)
    assert result.stop_reason == "max_iter" and result.mask is not None  # unsure, no grounding round
    return result.mask


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "stop", "note"),
    [
        ([Status(500), Status(500)], "fallback", "ground fell back to the loop's answer: the VLM failed"),
        ([Text("I think it is the round one.")], "fallback", "the VLM's answer has no box"),
        ([Text('{"box": [120, 90, 60, 40]}')], "fallback", "refused the VLM's answer: box .* is inverted"),
        ([Text('{"box": ["a", 1, 2, 3]}')], "fallback", "box.0: Input should be a valid number"),
        ([Text('{"box": null}')], "not_found", "the VLM found no such object"),
    ],
)
def test_when_grounding_fails_the_loops_answer_stands(script: list[Spec], stop: str, note: str) -> None:
    result, srv = ground(script)
    assert result.error is None and result.stop_reason == stop
    assert any(re.search(note, n) for n in result.notes), result.notes
    assert np.array_equal(result.mask, oneshot_mask())  # the answer before grounding
    assert result.costs.tools["vlm"].calls == 1 and srv.pending == 0
    assert result.costs.tools["vlm"].errors == (1 if stop == "fallback" and "failed" in note else 0)


def test_qwen_style_answers_are_understood() -> None:
    ms, _, _ = scene()
    x0, y0, x1, y1 = ms.box_xyxy
    qwen = f'```json\n[{{"bbox_2d": [{x0}, {y0}, {x1}, {y1}], "label": "ball"}}]\n```'
    result, _ = ground([Text(qwen)])
    assert result.stop_reason == "grounded" and iou(result.mask, ms.target.mask) > 0.95
    assert parse_ground_answer("The box is [1, 2, 3, 4].") == {"box": [1, 2, 3, 4]}
    assert parse_ground_answer('{"point_2d": [5, 6]}') == {"points": [[5, 6]]}
    qwen2 = "<|object_ref_start|>ball<|object_ref_end|><|box_start|>(120,45),(398, 610)<|box_end|>"
    assert parse_ground_answer(qwen2) == {"box": [120.0, 45.0, 398.0, 610.0]}
    assert parse_ground_answer('{"box": [1,2,3,4], "points": [[2,3]], "labels": [1]}') == {
        "box": [1, 2, 3, 4], "points": [[2, 3]], "labels": [1],
    }  # fmt: skip
    with pytest.raises(ToolError, match="has no box"):
        parse_ground_answer("")


def test_a_points_answer_draws_the_region_under_them() -> None:
    ms, _, _ = scene()
    ys, xs = np.nonzero(ms.target.mask)
    result, _ = ground([Text(json.dumps({"points": [[int(xs[len(xs) // 2]), int(ys[len(ys) // 2])]]}))])
    assert result.stop_reason == "grounded" and iou(result.mask, ms.target.mask) > 0.95
    assert result.candidates[0]["origin"] == "region_prompt:points"


class CornerPrompt(PromptTool):
    """A prompt tool that always draws a 3x3 square in the corner, whatever it is shown."""

    name = "region_prompt"
    description = "Draws the top-left corner."

    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        mask = np.zeros((1, *ws.image.size), bool)
        mask[0, :3, :3] = True
        return mask, np.ones(1, np.float32)


def test_a_drawing_that_does_not_fit_the_box_is_not_chosen(tmp_path: Path) -> None:
    ms, image, expression = scene()
    with ScriptedServer([Text(json.dumps({"box": list(ms.box_xyxy)}))]) as srv:
        registry = ToolRegistry(ToolSettings(vlm=make_client(srv)))
        registry.register("region_prompt", CornerPrompt)
        result = run_episode(ground_session(None, tmp_path / "t.jsonl", registry), image, expression)
    assert result.stop_reason in ("max_iter", "guard")
    assert any("does not match the VLM's box" in n for n in result.notes)
    assert result.candidates[0]["origin"] == "region_propose"  # the ranker's choice kept
    tree = render_trace(tmp_path / "t.jsonl")
    assert "not confirmed: ranker's choice kept" in tree and "prompt region_prompt: box" in tree


def test_no_vlm_call_when_sure_out_of_rounds_or_over_budget() -> None:
    _, image, _ = scene()
    with ScriptedServer([]) as srv:
        client = make_client(srv)
        sure = run_episode(ground_session(client), image, "the green circle")
        assert sure.stop_reason == "guard"
        broke = run_episode(ground_session(make_client(srv), budget_tokens=0), image, "jade ball")
        assert broke.stop_reason == "budget" and any("token budget" in n for n in broke.notes)
        assert len(srv.requests) == 0


def test_ground_needs_a_proposer_that_takes_prompts_and_a_vlm() -> None:
    registry = ToolRegistry(ToolSettings(vlm=_NeverAsked()))
    registry.register("empty_propose", EmptyPropose)
    with pytest.raises(ConfigError, match="--controller ground needs a proposer that takes a box or points"):
        Session(registry, EpisodeConfig(controller="ground", proposer="empty_propose", ranker=RANKER))
    with pytest.raises(ConfigError, match="--controller ground needs a VLM"):
        ground_session(None)  # refused when the session is built, before any example
    with pytest.raises(ConfigError, match="--vlm-coords must be one of pixels, norm1000, norm1000-yx"):
        VLMProfile(coords="inches")  # type: ignore[arg-type]


def test_the_agent_gets_bad_boxes_back_as_errors_and_draws_a_good_one() -> None:
    ms, image, expression = scene()
    box = [float(v) for v in ms.box_xyxy]
    script = [
        ToolCalls.of(("region_prompt", {"box": box})),  # before any proposal
        ToolCalls.of((PROPOSER, {})),
        ToolCalls.of(
            ("region_prompt", {"box": "the ball"}),
            Call("region_prompt", '{"box": [NaN, 1, 2, 3]}'),
            ("region_prompt", {"box": [900, 900, 950, 950]}),
            ("region_prompt", {"box": [box[2], box[1], box[0], box[3]]}),
            ("region_prompt", {"box": box}),
        ),
        ToolCalls.of((RANKER, {})),
    ]

    def submit_the_drawn_one(request: dict[str, Any]) -> Spec:
        added = next(
            json.loads(m["content"])["added"] for m in tool_messages_of(request) if '"added"' in m["content"]
        )
        return ToolCalls.of(("submit", {"index": added[0]["index"], "reason": "drawn"}))

    with ScriptedServer(script, policy=submit_the_drawn_one) as srv:
        result = run_episode(make_session(make_client(srv)), image, expression)
    assert result.error is None and result.stop_reason == "agent_submit" and len(srv.requests) == 5
    assert iou(result.mask, ms.target.mask) > 0.95 and result.candidates[0]["origin"] == "region_prompt:box"
    first = json.loads(tool_messages(srv.requests[1])[0]["content"])
    assert "call the propose tool first" in first["error"]
    answers = [json.loads(m["content"]) for m in tool_messages(srv.requests[3])[-5:]]
    assert "box: Input should be a valid list" in answers[0]["error"]
    assert "finite number" in answers[1]["error"]
    assert (
        "outside the image" in answers[2]["error"] and "320x240 image you were shown" in answers[2]["error"]
    )
    assert "inverted" in answers[3]["error"]
    added = answers[4]["added"][0]
    assert added["origin"] == "region_prompt:box" and added["box"] == [round(v) for v in box]
    ranked = json.loads(tool_messages(srv.requests[4])[-1]["content"])
    assert all(c["origin"] == "region_propose" for c in ranked["top"] if c["index"] != added["index"])
    assert ranked["n"] == added["index"] + 1  # the drawn candidate was ranked with the others
    system = srv.requests[0].json["messages"][0]["content"]
    assert (
        "region_prompt: when no candidate is the object" in system and "pixels of the 320x240 image" in system
    )


def tool_messages_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request.get("messages", []) if m.get("role") == "tool"]
