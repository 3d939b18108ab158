"""The ``oneshot`` and ``loop`` controllers.

Each drives one :class:`agent.episode.Episode`: it calls tools through ``episode.call`` (the
single invocation path) and sets ``episode.stop_reason``.
"""

from __future__ import annotations

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
            refinement = await ep.call(cfg.refiner, {})
        except (ToolError, VLMError) as exc:
            # A refiner outage must not cost the example: keep the best candidate so far.
            ep.fall_back(f"refiner failed, fell back to the best ranking: {exc}", fallback_kind(exc))
            return
        if len(ep.ws.history) == tried:
            # Nothing new: re-ranking an earlier query would only repeat an earlier ranking.
            ep.log.info("refine_stalled", step=ep.step, query=getattr(refinement, "query", None))
            ep.stop_reason = StopReason.REFINER_EXHAUSTED
            return
        ep.iterations += 1  # a round counts once it produced a new query to rank
        ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))
