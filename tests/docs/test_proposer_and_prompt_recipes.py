"""The recipes "A text-conditioned proposer" and "A prompt tool" of docs/architecture.md,
followed step by step with tools of the test's own (registered in-process: registering by
entry point is the tool recipe's test).

A text-conditioned proposer: ``text_conditioned = True`` makes the loop propose again after
each rewrite, and an empty answer is "nothing found" (the guard sees an empty ranking; an
episode that found nothing for any query ends ``not_found``), not a failed example.

A prompt tool: a ``PromptTool`` subclass implements only ``draw(ws, prompt)`` and is named in
a proposer's ``prompt_tool``; ``ground`` then draws with it what the VLM points at, the box
reaching ``draw`` in working-image pixels whatever convention the VLM answered in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import anyio
import numpy as np
import pytest

from agent.episode import EpisodeConfig, EpisodeResult
from agent.session import Session
from agent.tracing import Tracer
from agent.vlm import VLMClient
from agent.vlm_config import VLMConfig
from agent.vlm_profile import VLMProfile
from bench.doubles.oracle_vlm import OracleVLM, Target
from bench.doubles.scripted_server import ScriptedServer
from tools.base import StrictParams, Tool, ToolSettings, Workspace
from tools.coords import Units
from tools.offline.missed_scenes import halo_scene
from tools.offline.region_propose import RegionPropose
from tools.prompting import Prompt, PromptTool
from tools.registry import ToolRegistry
from tools.types import Image, Proposals

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def two_squares() -> Image:
    px = np.full((120, 160, 3), 128, np.uint8)
    px[20:60, 20:60] = COLOURS["red"]
    px[60:100, 100:140] = COLOURS["blue"]
    return Image.from_array(px)


def recipe_text(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    return " ".join(text[start : text.index("\n### ", start + 1)].split())


# --- a text-conditioned proposer -------------------------------------------------------------


class ColourParams(StrictParams):
    pass


class ColourPropose(Tool):
    """Candidates for the query: the pixels of each colour word it names (none: nothing)."""

    name = "colour_propose"
    description = "Find the pixels of the colour the query names."
    version = "1"
    role = "propose"
    Params = ColourParams
    Output = Proposals
    text_conditioned: ClassVar[bool] = True  # the recipe's one line

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        return {"image": ws.image.digest, "query": ws.query}

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        pixels = ws.image.pixels
        masks = [(pixels == rgb).all(-1) for word, rgb in COLOURS.items() if word in ws.query.split()]
        if not masks:
            return Proposals.empty(ws.image.size, self.name)  # an answer: nothing found
        return Proposals.from_masks(np.stack(masks), source=self.name)


class NotConditioned(ColourPropose):
    name = "colour_propose_once"
    text_conditioned: ClassVar[bool] = False


def loop_episode(expression: str, proposer: str, trace: Path) -> EpisodeResult:
    registry = ToolRegistry(ToolSettings(options={"refine_query": {"refiner": "rules"}}))
    registry.register(ColourPropose.name, ColourPropose)
    registry.register(NotConditioned.name, NotConditioned)
    config = EpisodeConfig(controller="loop", proposer=proposer, ranker="attribute_rank", max_iter=2)
    with Tracer(trace, run_id="t") as tracer:
        session = Session(registry, config, tracer=tracer)
        return anyio.run(session.run, two_squares(), expression, "s0")


def calls_of(trace: Path, tool: str) -> int:
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return sum(1 for e in events if e.get("event") == "tool_call" and e["tool"] == tool and "error" not in e)


def test_text_conditioned_proposer_recipe_proposes_again_after_each_rewrite(tmp_path: Path) -> None:
    text = recipe_text("A text-conditioned proposer")
    assert "`text_conditioned = True`" in text and "proposes again after each rewrite" in text
    # "crimson" is no colour word of the proposer: nothing found, then the rules refiner's
    # canonical rewrite ("the red square") is proposed for again and found.
    found = loop_episode("the crimson square", ColourPropose.name, tmp_path / "found.jsonl")
    assert found.ok and found.stop_reason == "guard" and found.iterations == 1
    assert calls_of(tmp_path / "found.jsonl", ColourPropose.name) == 2  # once per query
    assert found.mask is not None and found.mask[30, 30] and not found.mask[80, 120]  # the red one
    # Nothing for any query: an answer, not a failure.
    nothing = loop_episode("the purple square", ColourPropose.name, tmp_path / "none.jsonl")
    assert nothing.ok and nothing.stop_reason == "not_found"
    assert calls_of(tmp_path / "none.jsonl", ColourPropose.name) >= 2
    # Without the flag the loop proposes once per image and nothing found is a failed example.
    once = loop_episode("the crimson square", NotConditioned.name, tmp_path / "once.jsonl")
    assert calls_of(tmp_path / "once.jsonl", NotConditioned.name) == 1 and not once.ok


# --- a prompt tool ---------------------------------------------------------------------------


class BoxFill(PromptTool):
    """Draws the prompt's box, filled: the whole recipe is ``draw``."""

    name = "box_fill"
    description = "Fill the box you give."
    version = "1"
    seen: ClassVar[list[Prompt]] = []

    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        BoxFill.seen.append(prompt)
        h, w = ws.image.size
        mask = np.zeros((1, h, w), bool)
        assert prompt.box is not None
        x0, y0, x1, y1 = (round(float(v)) for v in prompt.box)
        mask[0, y0:y1, x0:x1] = True
        return mask, np.ones(1, np.float32)


class BoxedRegions(RegionPropose):
    """The offline region proposer, naming the recipe's prompt tool."""

    name = "boxed_regions"
    prompt_tool = "box_fill"


@pytest.mark.parametrize("coords", ["pixels", "norm1000"])
def test_prompt_tool_recipe_draws_what_the_vlm_points_at_in_working_pixels(coords: Units) -> None:
    text = recipe_text("A prompt tool")
    assert "`draw(ws, prompt)`" in text and "prompt_tool" in text
    ms = halo_scene(1)  # the region proposer merges the target with its halo: ground must draw
    image, expression = Image.from_array(ms.scene.image), ms.target.expressions_of("paraphrase")[0]
    h, w = image.size
    oracle = OracleVLM(
        {expression: Target(tuple(map(float, ms.box_xyxy)), (w, h), expression)},  # type: ignore[arg-type]
        proposer=BoxedRegions.name,
        prompt_tool=BoxFill.name,
    )
    BoxFill.seen.clear()
    with ScriptedServer(policy=oracle) as srv:
        config = VLMConfig(base_url=srv.base_url, model="m", api_key="k", profile=VLMProfile(coords=coords))
        registry = ToolRegistry(ToolSettings(vlm=VLMClient(config)))
        registry.register(BoxedRegions.name, BoxedRegions)
        registry.register(BoxFill.name, BoxFill)
        episode = EpisodeConfig(controller="ground", proposer=BoxedRegions.name, ranker="attribute_rank")

        async def go() -> EpisodeResult:
            try:
                return await Session(registry, episode).run(image, expression, "s0")
            finally:
                await registry.settings.vlm.aclose()  # type: ignore[union-attr]

        result = anyio.run(go)
    assert result.stop_reason == "grounded" and result.candidates[0]["origin"] == "box_fill:box"
    (prompt,) = BoxFill.seen  # drawn once, with the box in working pixels (however it was sent)
    assert prompt.box is not None and np.allclose(prompt.box, ms.box_xyxy, atol=1.0)
    x0, y0, x1, y1 = ms.box_xyxy
    assert result.mask is not None and result.mask[y0:y1, x0:x1].mean() > 0.95
