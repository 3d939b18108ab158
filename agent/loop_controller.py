"""The ``oneshot`` and ``loop`` controllers (specs :data:`ONESHOT` and :data:`LOOP`).

Each drives one :class:`agent.episode.Episode`: it calls tools through ``episode.call`` (the
single invocation path) and sets ``episode.stop_reason``. Neither has options of its own:
the guard and ``max_iter`` are the episode's (:class:`agent.episode.EpisodeConfig`).

A text-conditioned proposer (``Tool.text_conditioned``: SAM 3) proposes for the current query,
so the loop proposes again after each rewrite, and finding nothing is an answer: it reaches the
guard as an empty ranking ("nothing found", conf 0), and an episode that found nothing for any
query ends ``not_found``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agent.controllers import ControllerSpec
from agent.episode import Episode, StopReason, fallback_kind
from tools.errors import ConfigError, ToolError, VLMError
from tools.types import Ranking


def proposes_by_text(ep: Episode) -> bool:
    """The episode's proposer finds candidates for the query (see the module docstring)."""
    try:
        return ep.registry.declaration(ep.config.proposer).text_conditioned
    except ConfigError:
        return False


def found_nothing(ep: Episode) -> bool:
    """A text-conditioned proposer ran and no candidate is held."""
    props = ep.ws.proposals
    return props is not None and len(props) == 0 and proposes_by_text(ep)


def nothing_found(ep: Episode) -> Ranking:
    """The empty ranking that stands for "nothing found" (conf 0: no guard passes it)."""
    ep.log.info("nothing_found", step=ep.step, query=ep.ws.query, proposer=ep.config.proposer)
    empty = np.zeros(0, dtype=np.float32)
    props = ep.ws.proposals
    return Ranking(empty, empty, ep.ws.query, 1.0, props.digest if props is not None else "", "")


async def propose_and_rank(ep: Episode) -> Ranking:
    """Propose (cached per image, or per image and query) and rank against the current query;
    returns the ranking, empty when a text-conditioned proposer found nothing."""
    cfg = ep.config
    await ep.call(cfg.proposer, dict(cfg.propose_args))
    if found_nothing(ep):
        return nothing_found(ep)
    ep.ws.require_proposals()
    ranking: Ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))
    return ranking


def end_out_of_rounds(ep: Episode, reason: StopReason) -> None:
    """Stop with ``reason``, or ``not_found`` when nothing was found for any query tried."""
    if found_nothing(ep):
        ep.notes.append(f"{ep.config.proposer} found nothing for any query tried: {ep.ws.history}")
        reason = StopReason.NOT_FOUND
    ep.stop_reason = reason


async def ensure_ranking(ep: Episode) -> bool:
    """Propose and rank directly (no VLM) when the workspace holds no usable ranking; returns
    True when it had to (the episode ended early: a fallback, a limit, a deadline)."""
    ws, cfg = ep.ws, ep.config
    ranking, props = ws.ranking, ws.proposals
    if ranking is not None and props is not None and len(ranking) == len(props) > 0:
        return False
    proposed = ws.proposals is None
    if proposed:
        await ep.call(cfg.proposer, dict(cfg.propose_args))
    if found_nothing(ep):
        return proposed  # nothing to rank: the episode's answer is "nothing found"
    ws.require_proposals()
    await ep.call(cfg.ranker, dict(cfg.rank_args))
    return True


def refine_args(ep: Episode) -> dict[str, Any]:
    """The refiner's arguments: ``allow_none`` where "nothing matches" is an answer the episode
    takes (``not_found`` empty) and the refiner has that parameter (``refine_query`` does)."""
    fields = getattr(ep.registry.declaration(ep.config.refiner).Params, "model_fields", {})
    return {"allow_none": True} if ep.config.answers_empty and "allow_none" in fields else {}


async def run_oneshot(ep: Episode) -> None:
    """Propose, rank, take top-1."""
    await propose_and_rank(ep)
    end_out_of_rounds(ep, StopReason.ONESHOT)


async def run_loop(ep: Episode) -> None:
    """Rank; while the guard fails and fewer than ``max_iter`` rounds ran: refine, re-rank.

    A round counts only when the refiner gave a query not tried before (the workspace rejects
    repeats, compared case-, space- and punctuation-blind); when it has nothing new the
    episode ends with ``refiner_exhausted``.
    """
    cfg = ep.config
    requery = proposes_by_text(ep)
    ranking = await propose_and_rank(ep)
    while True:
        if ep.guard(ranking):
            ep.stop_reason = StopReason.GUARD
            return
        if ep.iterations >= cfg.max_iter:
            end_out_of_rounds(ep, StopReason.MAX_ITER)
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
            end_out_of_rounds(ep, StopReason.REFINER_EXHAUSTED)
            return
        ep.iterations += 1  # a round counts once it produced a new query to rank
        # A text-conditioned proposer looks for the new query (the image stays encoded).
        ranking = await (propose_and_rank(ep) if requery else ep.call(cfg.ranker, dict(cfg.rank_args)))


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
