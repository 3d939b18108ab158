"""The ``oneshot`` and ``loop`` controllers (specs :data:`ONESHOT` and :data:`LOOP`).

Each drives one :class:`agent.episode.Episode`: it calls tools through ``episode.call`` (the
single invocation path) and sets ``episode.stop_reason``. Neither has options of its own:
the guard and ``max_iter`` are the episode's (:class:`agent.episode.EpisodeConfig`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.controllers import ControllerSpec
from agent.episode import Episode, StopReason, fallback_kind
from tools.errors import ToolError, VLMError
from tools.types import Ranking


async def propose_and_rank(ep: Episode) -> Ranking:
    """Propose once (cached per image) and rank against the current query; returns the ranking."""
    cfg = ep.config
    await ep.call(cfg.proposer, dict(cfg.propose_args))
    ep.ws.require_proposals()
    ranking: Ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))
    return ranking


async def ensure_ranking(ep: Episode) -> bool:
    """Propose and rank directly (no VLM) when the workspace holds no usable ranking; returns
    True when it had to (the episode ended early: a fallback, a limit, a deadline)."""
    ws, cfg = ep.ws, ep.config
    ranking, props = ws.ranking, ws.proposals
    if ranking is not None and props is not None and len(ranking) == len(props) > 0:
        return False
    if ws.proposals is None:
        await ep.call(cfg.proposer, dict(cfg.propose_args))
    ws.require_proposals()
    await ep.call(cfg.ranker, dict(cfg.rank_args))
    return True


def refine_args(ep: Episode) -> dict[str, Any]:
    """The refiner's arguments: ``allow_none`` where "nothing matches" is an answer the episode
    takes (``not_found`` empty) and the refiner has that parameter (``refine_query`` does)."""
    fields = getattr(ep.registry.tool_class(ep.config.refiner).Params, "model_fields", {})
    return {"allow_none": True} if ep.config.answers_empty and "allow_none" in fields else {}


async def run_oneshot(ep: Episode) -> None:
    """Propose, rank, take top-1."""
    await propose_and_rank(ep)
    ep.stop_reason = StopReason.ONESHOT


async def run_loop(ep: Episode) -> None:
    """Rank; while the guard fails and fewer than ``max_iter`` rounds ran: refine, re-rank.

    A round counts only when the refiner gave a query not tried before (the workspace rejects
    repeats, compared case-, space- and punctuation-blind); when it has nothing new the
    episode ends with ``refiner_exhausted``.
    """
    cfg = ep.config
    ranking = await propose_and_rank(ep)
    while True:
        if ep.guard(ranking):
            ep.stop_reason = StopReason.GUARD
            return
        if ep.iterations >= cfg.max_iter:
            ep.stop_reason = StopReason.MAX_ITER
            return
        tried = len(ep.ws.history)
        try:
            refinement = await ep.call(cfg.refiner, refine_args(ep))
        except (ToolError, VLMError) as exc:
            # A refiner outage must not cost the example: keep the best candidate so far.
            ep.fall_back(f"refiner failed, fell back to the best ranking: {exc}", fallback_kind(exc))
            return
        if getattr(refinement, "no_match", False):  # the refiner says the expression refers to nothing
            ep.notes.append(f"{cfg.refiner}: nothing in the image matches the expression")
            ep.stop_reason = StopReason.NOT_FOUND
            return
        if len(ep.ws.history) == tried:
            # Nothing new: re-ranking an earlier query would only repeat an earlier ranking.
            ep.log.info("refine_stalled", step=ep.step, query=getattr(refinement, "query", None))
            ep.stop_reason = StopReason.REFINER_EXHAUSTED
            return
        ep.iterations += 1  # a round counts once it produced a new query to rank
        ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))


def _rounds_label(spec: ControllerSpec, label: Mapping[str, Any]) -> str:
    """``loop(rules) x3``: the refiner and the rounds tell loop runs apart."""
    return f"{spec.name}({label.get('refiner')}) x{label.get('max_iter')}"


ONESHOT = ControllerSpec(
    name="oneshot",
    run=run_oneshot,
    description="propose, rank, take the top-1 candidate (no refiner, no VLM)",
)
LOOP = ControllerSpec(
    name="loop",
    run=run_loop,
    description="while the ranking is unsure and fewer than --max-iter rounds ran: refine the "
    "query (--refiner rules|vlm), re-rank",
    refines=True,
    label=_rounds_label,
)
