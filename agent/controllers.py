"""The ``oneshot`` and ``loop`` controllers.

A controller drives one :class:`agent.session.Episode`: it calls tools through
``episode.call`` (the single invocation path) and sets ``episode.stop_reason``. The
chosen candidate is derived afterwards from the workspace's rankings, so every controller
ends the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.errors import ToolError, VLMError

if TYPE_CHECKING:
    from agent.session import Episode


async def propose_and_rank(ep: Episode) -> None:
    """Propose once (cached per image) and rank against the current query."""
    cfg = ep.config
    await ep.call(cfg.proposer, dict(cfg.propose_args))
    ep.ws.require_proposals()
    await ep.call(cfg.ranker, dict(cfg.rank_args))


async def run_oneshot(ep: Episode) -> None:
    """Propose, rank, take top-1."""
    await propose_and_rank(ep)
    ep.stop_reason = "oneshot"


async def run_loop(ep: Episode) -> None:
    """Rank; while the guard fails and fewer than ``max_iter`` rounds ran: refine, re-rank."""
    cfg = ep.config
    await propose_and_rank(ep)
    while True:
        ranking = ep.ws.ranking
        assert ranking is not None  # set by the rank call above
        if ep.guard(ranking):
            ep.stop_reason = "guard"
            return
        if ep.iterations >= cfg.max_iter:
            ep.stop_reason = "max_iter"
            return
        before = ep.ws.query
        try:
            await ep.call(cfg.refiner, {})
        except (ToolError, VLMError) as exc:
            # A refiner outage must not cost the example: keep the best candidate so far.
            ep.notes.append(f"refiner failed, fell back to the best ranking: {exc}")
            ep.stop_reason = "fallback"
            return
        if ep.ws.query == before:
            # The refiner has nothing new to say; re-ranking the same text changes nothing.
            ep.log.info("refine_stalled", step=ep.step, query=before)
            ep.stop_reason = "max_iter"
            return
        ep.iterations += 1  # a round counts once it produced a new query to rank
        await ep.call(cfg.ranker, dict(cfg.rank_args))
