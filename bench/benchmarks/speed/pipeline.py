"""The timed main pass of ``bench speed``: propose and rank every image, per-stage seconds.

The tools are called directly (no cache, no episode): this measures compute. SAM's stages
come from the tool's own stage clock (encode, decode, post-process); ranking is split into
its image side (visual prompts and the batched vision forward) and its text side (one text
forward). Each image is ranked by a fresh ``clip_rank`` on the shared model, so no image
benefits from another's cached embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from bench.benchmarks.speed.machine import PeakMemory, peak_memory, timed
from bench.benchmarks.speed.setup import Models, NamedImage
from tools.accel import StageClock
from tools.base import Workspace
from tools.clip_declaration import ClipRankParams
from tools.clip_rank import ClipRank, apply_template
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import Proposals
from tools.visual_prompts import PromptMode

STAGES = ("encode", "decode", "postprocess", "rank_image", "rank_text")
OPEN_THRESHOLDS = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
DEFAULT_TEMPLATE = ClipRankParams().prompt_template  # what a run ranks with


@dataclass
class PassResult:
    """What the main pass measured.

    Attributes:
        stage_seconds: total seconds per stage over all images.
        propose_seconds: wall seconds of proposing, per image (in order; with an encoder
            batch above 1 the images run concurrently and this holds one total).
        wall_seconds: wall seconds of the whole pass (propose and rank).
        proposals: the proposals of each image.
        peak: peak memory over the pass.
    """

    stage_seconds: dict[str, float]
    propose_seconds: list[float]
    wall_seconds: float
    proposals: list[Proposals]
    peak: PeakMemory | None
    candidates: list[int] = field(default_factory=list)


def sam_params(points_per_side: int, thresholds: str) -> SamProposeParams:
    """The tool's parameters for a pass: its defaults, or all filters off (``open``); the
    prompt batch size comes from ``ToolSettings.points_per_batch``."""
    params = SamProposeParams(points_per_side=points_per_side)
    return params.model_copy(update=OPEN_THRESHOLDS) if thresholds == "open" else params


def propose_all(
    tool: SamPropose, images: list[NamedImage], params: SamProposeParams, concurrent: bool
) -> tuple[list[Proposals], list[float]]:
    """Propose on every image: one after another, or all at once (encoder batching)."""
    out: dict[int, Proposals] = {}
    seconds: list[float] = []

    async def one(i: int) -> None:
        out[i] = await tool(Workspace(images[i].image, "speed"), params)

    async def main() -> None:
        if concurrent:
            async with anyio.create_task_group() as tg:
                for i in range(len(images)):
                    tg.start_soon(one, i)
            return
        for i in range(len(images)):
            with timed(tool.settings.device) as watch:
                await one(i)
            seconds.append(watch.seconds)

    device = tool.settings.device
    with timed(device) as total:
        anyio.run(main)
    return [out[i] for i in range(len(images))], seconds or [total.seconds]


def rank_one(
    models: Models, named: NamedImage, proposals: Proposals, mode: PromptMode, query: str, clock: StageClock
) -> int:
    """Rank one image's proposals with a fresh ``clip_rank``; returns the candidates ranked."""
    tool = ClipRank(models.settings, bundle=models.clip)
    if len(proposals):
        with clock.stage("rank_image"):
            tool.image_embeddings(named.image, proposals, mode)
    with clock.stage("rank_text"):
        tool.text_embedding(apply_template(DEFAULT_TEMPLATE, query))
    return len(proposals)


def run_pass(
    models: Models,
    sam_tool: SamPropose,
    images: list[NamedImage],
    params: SamProposeParams,
    mode: PromptMode,
    query: str,
) -> PassResult:
    """Propose on every image, then rank each image's proposals; timed per stage."""
    device = models.settings.device
    sam_tool.clock.reset()
    sam_tool.clock.sync = True
    rank_clock = StageClock(device, sync=True)
    concurrent = models.settings.encoder_batch > 1
    with peak_memory(device) as memory, timed(device) as wall:
        proposals, propose_seconds = propose_all(sam_tool, images, params, concurrent)
        candidates = [
            rank_one(models, named, props, mode, query, rank_clock)
            for named, props in zip(images, proposals, strict=True)
        ]
    stages = {**sam_tool.clock.seconds, **rank_clock.seconds}
    return PassResult(
        stage_seconds={name: stages.get(name, 0.0) for name in STAGES},
        propose_seconds=propose_seconds,
        wall_seconds=wall.seconds,
        proposals=proposals,
        peak=memory.peak,
        candidates=candidates,
    )
