"""Grounded prompts measured on generated scenes whose target the proposer misses.

    refseg bench ground [--n 20]      # or measure(n=..) from Python

Each scene (:func:`tools.offline.missed_scenes.halo_scene`) has a target that the offline
proposer merges with its halo, referred to by a paraphrase (an unsure ranking). Controllers
``oneshot``, ``loop`` (VLM refiner), ``agent`` and ``ground`` run with the offline toolset
against the oracle VLM (:class:`bench.doubles.oracle_vlm.OracleVLM`: exact boxes) and jittered ones
(corners moved by up to 10% and 25% of the box size), over real HTTP. Per controller: mIoU, VLM
calls, (estimated) tokens and USD (at the default model's price) per example, and the stop
reasons. Then the SAM path with a
tiny random-weight SAM: image encodes per image for ``ground`` and ``agent`` (one each:
``sam_prompt`` reuses ``sam_propose``'s embedding).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np

from agent.episode import EpisodeConfig
from agent.session import Session
from agent.tracing import Tracer
from agent.vlm import DEFAULT_MODEL, VLMClient, VLMConfig
from agent.vlm_profile import VLMProfile, resolve_profile
from bench.doubles.oracle_vlm import OracleVLM, Target
from bench.doubles.scripted_server import Policy, ScriptedServer
from cache.store import ToolCache
from tools.base import ToolSettings
from tools.offline.missed_scenes import MissedScene, halo_scenes
from tools.registry import ToolRegistry
from tools.types import Image

CONTROLLERS = ("oneshot", "loop", "agent", "ground")
OFFLINE = {"proposer": "region_propose", "ranker": "attribute_rank"}
# Random SAM weights predict meaningless quality: keep every decoded mask (as bench runs do).
OPEN_SAM = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


@dataclass
class Row:
    """One controller against one server."""

    controller: str
    server: str
    ious: list[float] = field(default_factory=list)
    vlm_calls: int = 0
    tokens: int = 0
    usd: float = 0.0
    stops: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def miou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    def per_example(self, value: float) -> float:
        return value / max(len(self.ious), 1)


def targets_of(scenes: Sequence[MissedScene]) -> dict[str, Target]:
    """The oracle's answers: each scene's first paraphrase of its target."""
    out = {}
    for ms in scenes:
        h, w = ms.scene.image.shape[:2]
        x0, y0, x1, y1 = ms.box_xyxy
        canonical = ms.target.expressions_of("direct")[0]
        out[expression_of(ms)] = Target((x0, y0, x1, y1), (w, h), canonical)
    return out


def expression_of(ms: MissedScene) -> str:
    """The expression a scene is evaluated with: its target's first paraphrase (unsure)."""
    return (ms.target.expressions_of("paraphrase") or ms.target.expressions)[0]


def client_for(base_url: str, profile: VLMProfile | None = None) -> VLMClient:
    """A real client for the local server (no key needed, retries off), answering per ``profile``."""
    config = VLMConfig(
        base_url=base_url,
        model=DEFAULT_MODEL,
        api_key="oracle-needs-no-key",
        max_retries=0,
        profile=profile or VLMProfile(),
    )
    return VLMClient(config)


def _iou(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None:
        return 0.0
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


async def run_controller(
    controller: str,
    scenes: Sequence[MissedScene],
    jitter: float,
    settings: dict[str, Any] | None = None,
    tracer: Tracer | None = None,
    cache: ToolCache | None = None,
    policy: Policy | None = None,
) -> tuple[Row, Session]:
    """One controller over the scenes against a fresh oracle server; returns its row and session.

    Args:
        settings: overrides: ``tools`` (ToolSettings fields), ``options`` (tool options),
            ``episode`` (EpisodeConfig fields), ``oracle`` (OracleVLM tool names), ``profile``
            (:func:`agent.vlm_profile.resolve_profile` arguments: ``name`` and fields).
        tracer: where the episodes' events go (default: nowhere).
        cache: a disk cache shared by runs (proposals are then computed once per scene).
        policy: the server's policy (default: the oracle, which answers as the prompt asks;
            :class:`bench.doubles.vlm_conventions.ConventionVLM` answers as a model family does).
    """
    row = Row(controller, f"oracle jitter {jitter:.0%}" if jitter else "oracle")
    policy = policy or OracleVLM(targets_of(scenes), jitter=jitter, **(settings or {}).get("oracle", {}))
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=3600) as srv:
        profile = resolve_profile(**(settings or {}).get("profile", {}))
        client = client_for(srv.base_url, profile)
        options = {"refine_query": {"refiner": "vlm"}, **(settings or {}).get("options", {})}
        tool_settings = ToolSettings(vlm=client, options=options, **(settings or {}).get("tools", {}))
        config = EpisodeConfig(controller=controller, **{**OFFLINE, **(settings or {}).get("episode", {})})
        session = Session(ToolRegistry(tool_settings), config, cache=cache, tracer=tracer)
        start = time.perf_counter()
        try:
            for ms in scenes:
                before = len(srv.requests)
                image = Image.from_array(ms.scene.image)
                result = await session.run(image, expression_of(ms), ms.scene.scene_id)
                row.ious.append(_iou(result.mask, ms.target.mask))
                row.vlm_calls += len(srv.requests) - before
                total = result.costs.total()
                row.tokens += total.tokens_in + total.tokens_out
                row.usd += total.usd
                row.stops[str(result.stop_reason)] += 1
        finally:
            await client.aclose()
        row.seconds = time.perf_counter() - start
    return row, session


def measure(n: int = 20, seed: int = 0, jitters: Sequence[float] = (0.0, 0.1)) -> list[Row]:
    """Every controller against every server on ``n`` haloed scenes."""
    scenes = halo_scenes(n, seed)

    async def go() -> list[Row]:
        rows = []
        for jitter in jitters:
            for controller in CONTROLLERS:
                if jitter and controller in ("oneshot", "loop"):
                    continue  # they never ask for a box: the same as with the exact oracle
                rows.append((await run_controller(controller, scenes, jitter))[0])
        return rows

    return anyio.run(go)


def measure_encodes(n: int = 3, seed: int = 0) -> dict[str, Any]:
    """Image encodes per image with a tiny random SAM (``sam_propose`` + ``sam_prompt``)."""
    scenes = halo_scenes(n, seed)
    sam = {
        "oracle": {"proposer": "sam_propose", "prompt_tool": "sam_prompt"},
        "options": {"sam_propose": {"config": "tiny"}},
        "tools": {"weights": "random"},
        "episode": {"proposer": "sam_propose", "propose_args": OPEN_SAM, "tau_conf": 1.0},
    }

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for controller in ("ground", "agent"):
            row, session = await run_controller(controller, scenes, 0.0, sam)
            proposer = session.registry.get("sam_propose")
            out[f"{controller} encodes/image"] = getattr(proposer, "encodes", 0) / n
            out[f"{controller} sam_prompt calls/image"] = session.invoker.computed.get("sam_prompt", 0) / n
            out[f"{controller} stops"] = dict(row.stops)
        return out

    return anyio.run(go)


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| controller | server | mIoU | VLM calls / example | tokens / example | USD / 1k examples "
        "| stop reasons |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stops = ", ".join(f"{k} {v}" for k, v in sorted(r.stops.items()))
        lines.append(
            f"| {r.controller} | {r.server} | {r.miou:.3f} | {r.per_example(r.vlm_calls):.2f} | "
            f"{r.per_example(r.tokens):.0f} | {1000 * r.per_example(r.usd):.3f} | {stops} |"
        )
    return "\n".join(lines)


def run_ground_table(n: int) -> int:
    """Print the controllers' table on ``n`` missed scenes and the SAM path's encode counts.

    Returns:
        0 (it measures; it judges nothing).
    """
    rows = measure(n, jitters=(0.0, 0.1, 0.25))
    print(f"{n} generated scenes, target merged with a halo by region_propose, paraphrased expression")
    print(format_table(rows))
    print(format_encodes(measure_encodes(ENCODE_SCENES), ENCODE_SCENES))
    return 0


ENCODE_SCENES = 3


def format_encodes(figures: dict[str, Any], n: int) -> str:
    """The SAM path's counts, labelled: they come from a tiny random-weight SAM on ``n`` other
    scenes, so its stop reasons say nothing about the table's accuracy."""
    lines = [
        f"SAM path (a tiny random-weight SAM as proposer, sam_prompt drawing; {n} scenes, oracle boxes): "
        "image encodes per image, which sam_prompt reuses from sam_propose"
    ]
    for controller in ("ground", "agent"):
        stops = ", ".join(f"{k} {v}" for k, v in sorted(figures[f"{controller} stops"].items()))
        lines.append(
            f"  {controller}: {figures[f'{controller} encodes/image']:.2f} encodes/image, "
            f"{figures[f'{controller} sam_prompt calls/image']:.2f} sam_prompt calls/image; stop reasons "
            f"{stops} (random weights: drawn masks are noise, so these stops are not the table's)"
        )
    return "\n".join(lines)
