"""Helpers for agent-controller tests: the offline toolset, a real VLM client, a scripted policy."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from agent.controller_options import AgentOptions
from agent.episode import EpisodeConfig, EpisodeResult
from agent.session import Session
from agent.tracing import Tracer
from agent.transcript import log_vlm_call
from agent.vlm import Price, VLMClient, VLMConfig
from bench.doubles.scripted_server import Call, ScriptedServer, Text, ToolCalls
from tools.base import Tool, ToolSettings, Workspace
from tools.offline.scenes import Scene, generate_scene
from tools.registry import ToolRegistry
from tools.types import Image, Proposals

PROPOSER, RANKER, REFINER = "region_propose", "attribute_rank", "refine_query"
FAKE_KEY = "sk-fake-agent-key-0123456789"
MODEL = "test-vlm"


def make_client(srv: ScriptedServer | str, *, key: str = FAKE_KEY, **overrides: Any) -> VLMClient:
    """A real VLMClient (real ``openai`` SDK over HTTP) with quick retries and a known price."""
    base_url = srv if isinstance(srv, str) else srv.base_url
    settings: dict[str, Any] = {
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "timeout_s": 5.0,
        "prices": {MODEL: Price(1.0, 2.0)},
    }
    settings.update(overrides)
    return VLMClient(VLMConfig(base_url=base_url, model=MODEL, api_key=key, **settings), on_call=log_vlm_call)


def make_session(
    client: VLMClient | None,
    trace: Path | None = None,
    extra_tools: dict[str, Any] | None = None,
    **config: Any,
) -> Session:
    """An ``agent`` session over the offline toolset (region_propose + attribute_rank)."""
    registry = ToolRegistry(ToolSettings(vlm=client))  # the offline tools need no weights
    for name, factory in (extra_tools or {}).items():
        registry.register(name, factory)
    # Scripted conversations start from a blank slate unless a test asks for the warm start.
    names = {"proposer": PROPOSER, "ranker": RANKER, "refiner": REFINER}
    options = {"warm_start": False, **{k: v for k, v in config.items() if k in AgentOptions.model_fields}}
    general = {k: v for k, v in config.items() if k not in AgentOptions.model_fields}
    cfg = EpisodeConfig(controller="agent", **{**names, **general}, controller_options={"agent": options})
    return Session(registry, cfg, tracer=Tracer(trace, run_id="test-run"))


class EmptyPropose(Tool):
    """A proposer that never finds anything."""

    name = "empty_propose"
    description = "Propose nothing."
    role = "propose"
    Output = Proposals

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        h, w = ws.image.size
        zeros = np.zeros(0, np.float32)
        return Proposals(
            np.zeros((0, h, w), bool),
            np.zeros((0, 4), np.float32),
            zeros,
            zeros.copy(),
            np.zeros(0, np.int64),
            self.name,
        )


def scene_image(seed: int = 0) -> tuple[Scene, Image]:
    scene = generate_scene(seed)
    return scene, Image.from_array(scene.image)


def run_episode(session: Session, image: Image, expression: str, sample_id: str = "s0") -> EpisodeResult:
    async def go() -> EpisodeResult:
        try:
            return await session.run(image, expression, sample_id)
        finally:
            vlm = session.registry.settings.vlm
            if vlm is not None:
                await vlm.aclose()

    return anyio.run(go)


def best_index(image: Image, target: np.ndarray) -> int:
    """Index of the region_propose proposal that overlaps ``target`` best (IoU)."""

    async def go() -> int:
        registry = ToolRegistry(ToolSettings())
        tool = registry.get(PROPOSER)
        props = await tool(Workspace(image=image, expression="x"), tool.Params())
        inter = (props.masks & target).reshape(len(props), -1).sum(1)
        union = (props.masks | target).reshape(len(props), -1).sum(1)
        return int(np.argmax(inter / np.maximum(union, 1)))

    return anyio.run(go)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def free_port_url() -> str:
    """A base URL on which nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def tool_messages(request: Any) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a recorded request."""
    return [m for m in (request.json or {}).get("messages", []) if m.get("role") == "tool"]


def policy(request: dict[str, Any]) -> Text | ToolCalls:
    """A scripted agent: propose, rank, rank again with the canonical words if unsure, submit."""
    tools = [m for m in request.get("messages", []) if m.get("role") == "tool"]
    if not tools:
        return ToolCalls.of((PROPOSER, {}))
    last = json.loads(tools[-1]["content"])
    ranks = sum(1 for m in tools if '"top"' in m["content"])
    if "n_proposals" in last:
        return ToolCalls.of((RANKER, {}))
    if "top" in last and ranks == 1 and last["conf"] < 0.9:
        return ToolCalls.of(Call(RANKER, {"query": _canonical(request)}))
    if "top" in last:
        return ToolCalls.of(Call("submit", {"index": last["top"][0]["index"], "reason": "best match"}))
    return Text("I am not sure.")


def _canonical(request: dict[str, Any]) -> str:
    """The expression with scene synonyms mapped back to the ranker's words."""
    from tools.offline.scenes import COLOR_SYNONYMS, SHAPE_SYNONYMS

    user = request["messages"][1]["content"][0]["text"]
    text = user.split('"')[1]
    for table in (COLOR_SYNONYMS, SHAPE_SYNONYMS):
        for word, synonyms in table.items():
            for syn in sorted(synonyms, key=len, reverse=True):
                text = text.replace(syn, word)
    return text
