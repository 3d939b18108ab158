"""Helpers for the convention tests: episodes on haloed scenes against a scripted model family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from agent.episode import EpisodeConfig, EpisodeResult
from agent.session import Session
from agent.tracing import Tracer
from agent.transcript import log_vlm_call
from agent.vlm import Price, VLMClient, VLMConfig
from agent.vlm_profile import VLMProfile
from bench.benchmarks.ground import OFFLINE, expression_of, targets_of
from bench.doubles.scripted_server import RecordedRequest, ScriptedServer
from bench.doubles.vlm_conventions import ConventionVLM
from tools.base import ToolSettings
from tools.offline.missed_scenes import MissedScene, halo_scene
from tools.registry import ToolRegistry
from tools.types import Image

UNSURE_SEEDS = [1, 2, 4, 5]  # the ranker is unsure on these: grounding runs
MODEL = "family-vlm"


@dataclass
class Run:
    """Episodes of one controller against one scripted server."""

    results: list[EpisodeResult]
    ious: list[float]
    requests: list[RecordedRequest]


def scenes(n: int = 2) -> list[MissedScene]:
    return [halo_scene(s) for s in UNSURE_SEEDS[:n]]


def iou(a: np.ndarray | None, b: np.ndarray) -> float:
    return 0.0 if a is None else float((a & b).sum() / max((a | b).sum(), 1))


def run_family(
    controller: str,
    family: str,
    profile: VLMProfile,
    *,
    scenes_: list[MissedScene] | None = None,
    tool_style: str = "native",
    trace: Path | None = None,
    **double: Any,
) -> Run:
    """``controller`` on haloed scenes against :class:`ConventionVLM` ``family``, the client
    configured with ``profile`` (real client, real HTTP, transcripts on)."""
    chosen = scenes_ or scenes()
    policy = ConventionVLM(family, tool_style, targets=targets_of(chosen), **double)

    async def go() -> Run:
        with ScriptedServer(policy=policy, max_requests=500) as srv:
            config = VLMConfig(
                base_url=srv.base_url,
                model=MODEL,
                api_key="sk-family-test",
                max_retries=0,
                prices={MODEL: Price(1.0, 2.0)},
                profile=profile,
            )
            client = VLMClient(config, on_call=log_vlm_call)
            registry = ToolRegistry(ToolSettings(vlm=client))
            session = Session(
                registry,
                EpisodeConfig(controller=controller, **OFFLINE),
                tracer=Tracer(trace, run_id="conventions") if trace else None,
            )
            results = []
            try:
                for ms in chosen:
                    image = Image.from_array(ms.scene.image)
                    results.append(await session.run(image, expression_of(ms), ms.scene.scene_id))
            finally:
                await client.aclose()
                session.tracer.close()
            ious = [iou(r.mask, ms.target.mask) for r, ms in zip(results, chosen, strict=True)]
            return Run(results, ious, list(srv.requests))

    return anyio.run(go)
