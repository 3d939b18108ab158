"""Episodes on the SAM 3 toolset (tiny architecture, random weights): one encode per image
across expressions, "nothing found" as an answer, CLIP re-ranking, and ``ground`` / ``agent``
drawing with SAM 3 what an oracle VLM points at, the box reaching SAM 3 in its own frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import torch
from helpers_sam3 import scene, tiny_settings

from agent.episode import EpisodeConfig, EpisodeResult, StopReason
from agent.session import Session
from agent.tracing import Tracer
from bench.benchmarks.ground import client_for
from bench.doubles.oracle_vlm import OracleVLM, Target
from bench.doubles.scripted_server import ScriptedServer
from tools.clip_loading import register_tiny_clip
from tools.registry import ToolRegistry
from tools.types import Image

SAM3 = {"proposer": "sam3_propose", "ranker": "sam3_rank"}
OPEN = {"propose_args": {"threshold": 0.0}, "rank_args": {"threshold": 0.0}}  # random scores ~0.25
NOTHING = {"propose_args": {"threshold": 1.0}, "rank_args": {"threshold": 0.0}}  # never above 1.0


def run(
    images: list[tuple[Image, str]], tracer: Tracer | None = None, vlm: Any = None, **config: Any
) -> tuple[list[EpisodeResult], Session]:
    settings = tiny_settings(
        vlm=vlm, clip_model=register_tiny_clip(), options={"refine_query": {"refiner": "rules"}}
    )
    session = Session(ToolRegistry(settings), EpisodeConfig(**{**SAM3, **config}), tracer=tracer)

    async def go() -> list[EpisodeResult]:
        await session.setup()
        return [await session.run(image, text, f"e{i}") for i, (image, text) in enumerate(images)]

    return anyio.run(go), session


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_expressions_on_one_image_encode_it_once(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    image = scene()
    with Tracer(trace, run_id="t") as tracer:
        results, session = run(
            [(image, "the red box"), (image, "the blue box")], tracer, controller="loop", **OPEN
        )
    assert all(r.ok for r in results)
    assert session.registry.get("sam3_propose").encodes == 1  # type: ignore[attr-defined]
    proposes = [e for e in events(trace) if e.get("event") == "tool_call" and e["tool"] == "sam3_propose"]
    assert len(proposes) >= 2  # each expression, and each rewrite of the loop, asks SAM 3 again
    assert [e["result"]["image"] for e in proposes].count("encoded") == 1
    tools = {e["tool"] for e in events(trace) if e.get("event") == "tool_call"}
    assert {"sam3_propose", "sam3_rank"} <= tools


def test_nothing_found_is_an_answer_the_loop_refines_then_ends_not_found(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with Tracer(trace, run_id="t") as tracer:
        (result,), _ = run(
            [(scene(), "the red box on the left")], tracer, controller="loop", max_iter=2, **NOTHING
        )
    assert result.ok and result.error is None
    assert result.stop_reason == StopReason.NOT_FOUND and result.chosen == -1
    # Nothing found is the answer: an empty mask at the image's size (no candidate to keep).
    assert result.mask is not None and not result.mask.any() and result.mask.shape == result.image_size
    assert result.iterations == 2 and len(result.queries) == 3  # refined twice, each query searched
    assert result.costs.calls("sam3_propose") == 3 and result.costs.calls("sam3_rank") == 0
    found_nothing = [e for e in events(trace) if e.get("event") == "nothing_found"]
    assert [e["query"] for e in found_nothing] == result.queries
    assert any("found nothing for any query" in n for n in result.notes)
    (oneshot,), _ = run([(scene(), "the red box")], controller="oneshot", **NOTHING)
    assert oneshot.ok and oneshot.stop_reason == StopReason.NOT_FOUND


def test_clip_can_rank_sam3s_instances() -> None:
    (result,), session = run(
        [(scene(), "the red box")],
        controller="loop",
        ranker="clip_rank",
        max_iter=1,
        **{"propose_args": {"threshold": 0.0}},
    )
    assert result.ok and result.chosen >= 0 and result.mask is not None
    assert result.costs.calls("clip_rank") >= 1 and result.costs.calls("sam3_rank") == 0
    assert session.registry.get("sam3_propose").encodes == 1  # type: ignore[attr-defined]


def _oracle_scene() -> tuple[Image, Target, str]:
    """A 1000x560 image (the VLM sees it at 768x430, SAM 3 at 224x224) and its target's box."""
    rng = np.random.default_rng(5)
    px = rng.integers(0, 40, (560, 1000, 3), dtype=np.uint8)
    box = (610.0, 120.0, 890.0, 410.0)
    px[120:410, 610:890] = (230, 200, 30)
    text = "the yellow sign"
    return Image.from_array(px), Target(box, (1000, 560), "yellow sign"), text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("controller", "found"),
    [("ground", False), ("agent", True), ("agent", False)],
    ids=["ground", "agent", "agent-nothing"],
)
def test_the_vlms_box_reaches_sam3_in_its_own_frame(controller: str, found: bool) -> None:
    image, target, text = _oracle_scene()
    oracle = OracleVLM({text: target}, proposer="sam3_propose", ranker="sam3_rank", prompt_tool="sam3_prompt")
    with ScriptedServer(policy=oracle, max_requests=100, max_lifetime_s=600) as srv:
        client = client_for(srv.base_url)
        seen: list[torch.Tensor] = []
        hooks: list[Any] = []

        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            seen.append(kwargs["input_boxes"].clone())

        try:
            settings = tiny_settings(vlm=client, options={"refine_query": {"refiner": "rules"}})
            registry = ToolRegistry(settings)
            engine = registry.get("sam3_propose").engine()  # type: ignore[attr-defined]
            hooks.append(
                engine.model.tracker_model.prompt_encoder.register_forward_pre_hook(hook, with_kwargs=True)
            )
            config = EpisodeConfig(controller=controller, **SAM3, **(OPEN if found else NOTHING))
            session = Session(registry, config)
            result = anyio.run(session.run, image, text, "oracle")
        finally:
            for h in hooks:
                h.remove()
            anyio.run(client.aclose)
        requests = list(srv.requests)
    assert result.ok, result.error
    x0, y0, x1, y1 = target.box
    side = engine.side
    expected = np.array([x0 * side / 1000, y0 * side / 560, x1 * side / 1000, y1 * side / 560])
    assert len(seen) == 1 and np.abs(seen[0].reshape(4).numpy() - expected).max() <= 1.0
    origins = [c["origin"] for c in result.candidates]
    assert "sam3_prompt:box" in origins
    assert registry.get("sam3_propose").encodes == 1  # type: ignore[attr-defined]
    if controller == "ground":  # SAM 3 found nothing: the guard sent it to the VLM
        assert len(requests) == 1 and result.n_proposals == 1
        assert result.stop_reason in (StopReason.GROUNDED, StopReason.MAX_ITER)
    else:
        assert requests[0].json is not None
        messages = requests[0].json["messages"]
        assert "finds every instance of a short noun phrase" in messages[0]["content"]
        warm = json.dumps(messages)
        assert ("nothing for this query" in warm) is not found  # the warm start says so
        assert result.stop_reason == StopReason.AGENT_SUBMIT
        assert result.candidates[0]["origin"] == "sam3_prompt:box"
