"""The VLM refiner over real HTTP: prompt contents, reply parsing, overlay drawing."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (until conftest does it)

from agent.vlm import DEFAULT_MODEL, VLMClient, VLMConfig
from bench.doubles.scripted_server import ScriptedServer, Text, ToolCalls
from tools.base import ToolSettings, Workspace
from tools.errors import ToolError
from tools.refine import RefineParams, RefineQuery
from tools.refine_vlm import (
    candidate_overlay,
    parse_refinement,
    refine_with_vlm,
)
from tools.render import palette_colour
from tools.types import Image, Proposals, Ranking

H, W = 60, 90


def scene() -> Workspace:
    """Grey background, a red square (left) and a blue square (right); 3 proposals."""
    pixels = np.full((H, W, 3), 128, np.uint8)
    masks = np.zeros((3, H, W), bool)
    masks[0, 10:30, 5:25] = True  # red square
    masks[1, 20:50, 50:80] = True  # blue square
    masks[2, 0:60, 0:90] = True  # whole image
    pixels[masks[0]] = (200, 30, 30)
    pixels[masks[1]] = (30, 30, 200)
    ws = Workspace(image=Image.from_array(pixels), expression="the red thing on the left")
    ws.proposals = Proposals.from_masks(masks, source="test")
    # Ranking prefers the blue square, then the red one.
    ws.ranking = Ranking.from_scores(np.array([0.2, 0.3, 0.1]), ws.query, 0.1, ws.proposals.digest)
    ws.query = "thing"
    ws.history.append("thing")
    return ws


def refine(
    reply: Any, ws: Workspace | None = None, hint: str | None = None, *more: Any
) -> tuple[Any, ScriptedServer]:
    with ScriptedServer([reply, *more]) as srv:
        config = VLMConfig(
            base_url=srv.base_url, model=DEFAULT_MODEL, api_key="k", timeout_s=2, max_retries=0
        )

        async def go() -> Any:
            async with VLMClient(config) as client:
                return await refine_with_vlm(client, ws or scene(), hint)

        return asyncio.run(go()), srv


def decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    return np.asarray(PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_json_reply_and_request_contents() -> None:
    answer = {"query": "small red square on the left", "rationale": "the target is red, not blue"}
    result, srv = refine(Text(json.dumps(answer), prompt_tokens=800, completion_tokens=40), hint="look left")
    assert result.query == "small red square on the left"
    assert result.rationale == "the target is red, not blue"
    assert (result.tokens_in, result.tokens_out) == (800, 40)
    assert result.usd == pytest.approx(840 * 0.59 / 1e6)
    assert result.source == f"vlm:{DEFAULT_MODEL}"
    (req,) = srv.requests
    urls = req.image_urls()
    assert len(urls) == 2  # the image, then the candidate overlay
    image, overlay = decode(urls[0]), decode(urls[1])
    assert image.shape == (H, W, 3) and overlay.shape == (H, W, 3)
    assert not np.array_equal(image, overlay)
    prompt = "\n".join(req.text_parts())
    assert "Original expression: the red thing on the left" in prompt
    assert "Current query: thing" in prompt
    assert "Queries already tried (do not repeat any of them): the red thing on the left | thing" in prompt
    assert "Hint: look left" in prompt
    assert "1 (red, p=" in prompt and '"query"' in prompt


def test_fenced_reply() -> None:
    text = 'Sure!\n```json\n{"query": "the red box", "rationale": "colour"}\n```\n'
    result, _ = refine(Text(text))
    assert (result.query, result.rationale) == ("the red box", "colour")


@pytest.mark.parametrize(
    ("text", "query", "rationale"),
    [
        ('Here you go: {"query": "left red square", "rationale": "r"} hope it helps', "left red square", "r"),
        ("Query: the red square\nBecause it is red.", "the red square", ""),
        ('"a red square"', "a red square", ""),
        ("```\nred square, left\n```", "red square, left", ""),
    ],
)
def test_parse_variants(text: str, query: str, rationale: str) -> None:
    assert parse_refinement(text) == (query, rationale)


@pytest.mark.parametrize("text", ["", "   \n ", '{"rationale": "no query"}', '{"query": "  "}'])
def test_unusable_replies_raise_tool_error(text: str) -> None:
    with pytest.raises(ToolError):
        parse_refinement(text)


def test_empty_and_tool_call_replies_raise_tool_error() -> None:
    with pytest.raises(ToolError, match="empty"):
        refine(Text(""))
    with pytest.raises(ToolError, match="tool calls"):
        refine(ToolCalls.of(("rank", {"query": "x"})))


def test_overlay_outlines_top3_in_distinct_colours() -> None:
    ws = scene()
    overlay = candidate_overlay(ws)
    assert overlay is not None and overlay.shape == (H, W, 3)
    # Rank 1 = blue square (index 1): its outline is colour 0; the red square is rank 2.
    assert tuple(overlay[49, 65]) == palette_colour(0).rgb  # bottom edge of proposal 1
    assert tuple(overlay[29, 15]) == palette_colour(1).rgb  # bottom edge of proposal 0
    assert tuple(overlay[35, 65]) == tuple(ws.image.pixels[35, 65])  # interiors untouched
    ws.proposals = None
    assert candidate_overlay(ws) is None


def test_without_proposals_sends_only_the_image() -> None:
    ws = Workspace(image=Image.from_array(np.zeros((20, 30, 3), np.uint8)), expression="a cat")
    result, srv = refine(Text('{"query": "black cat"}'), ws)
    assert result.query == "black cat" and len(srv.requests[0].image_urls()) == 1


def test_refine_query_tool_uses_the_vlm_refiner() -> None:
    ws = scene()
    with ScriptedServer([Text('{"query": "red square", "rationale": "x"}')]) as srv:
        config = VLMConfig(base_url=srv.base_url, api_key="k", timeout_s=2, max_retries=0)

        async def go() -> Any:
            async with VLMClient(config) as client:
                tool = RefineQuery(ToolSettings(vlm=client, options={"refine_query": {"refiner": "vlm"}}))
                assert tool.fingerprint().endswith(f";vlm:{DEFAULT_MODEL}")  # the rules' too
                out = await tool(ws, RefineParams())
                tool.apply(ws, out)
                return out

        out = asyncio.run(go())
    assert out.query == "red square" and ws.query == "red square" and ws.history[-1] == "red square"


def test_a_repeated_query_is_sent_back_once() -> None:
    again = Text('{"query": "the red square on the left"}', prompt_tokens=900, completion_tokens=10)
    first = Text('{"query": "  THING. "}', prompt_tokens=800, completion_tokens=10)
    result, srv = refine(first, None, None, again)
    assert result.query == "the red square on the left"
    assert (result.tokens_in, result.tokens_out) == (1700, 20)  # both requests are the refinement's
    retry = "\n".join(srv.requests[1].text_parts())
    assert '"THING." was already tried' in retry


def test_a_second_repeat_is_returned_and_the_workspace_rejects_it() -> None:
    ws = scene()
    result, srv = refine(Text('{"query": "thing"}'), ws, None, Text('{"query": "Thing!"}'))
    assert len(srv.requests) == 2 and result.query == "Thing!"
    assert not ws.set_query(result.query) and ws.history == ["the red thing on the left", "thing"]
