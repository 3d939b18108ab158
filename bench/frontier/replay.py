"""What each recorded episode gives under other guard thresholds, from a run at 1/1.

The guard (:meth:`agent.episode.EpisodeConfig.passes_guard`) is ``conf >= tau_conf and gap >=
tau_gap``: lowering either threshold only makes it pass sooner. And what the controllers do
between two guard checks does not depend on the thresholds:

- ``loop`` (:func:`agent.loop_controller.run_loop`) ranks, checks, refines, ranks again. The
  refiner's input is the workspace (image, expression, current query, every query tried, the
  current ranking's top candidates), the same along any prefix of the episode, so its
  rewrites are the same (the rules refiner is deterministic; a VLM's answer is the same when
  it answers the same request the same way: a deterministic server, or the cache the runs
  share, which keys the call by exactly that input). ``max_iter``, a stalled refiner
  (``refiner_exhausted``) and a refiner failure (``fallback``) end the episode where the run
  at 1/1 ended it, unless the guard passed sooner. ``pick best`` is the first most confident
  ranking of the prefix (the workspace replaces its best only on a strictly higher conf).
- ``ground`` (:mod:`agent.ground_controller`) checks its first ranking; if it fails, one VLM
  call, the drawn mask, a re-rank, and a confirmation that compares the drawn mask with the
  VLM's box (no threshold). Only an unconfirmed drawing's stop reason reads the guard again
  (``guard`` or ``max_iter``, the same chosen candidate).
- ``agent`` checks its warm-start ranking before its first VLM turn; after that turn the
  VLM sees which of its rankings passed the guard, so what follows depends on the thresholds:
  past the first turn an episode is not replayable (:attr:`Outcome.record` is ``None``).

So an episode is a sequence of guard checks with, for each, the outcome of stopping there,
and the outcome of passing none (the recorded episode itself): :class:`EpisodeReplay`. A
stopped outcome is the record as it would have been written (chosen candidate, its score as
recorded in the ranking step, conf and gap, stop reason ``guard``, iterations, queries) and
what had been spent asking for help by that ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.frontier.source import FrontierSource, check_replayable
from bench.records import RankStepRecord, SampleRecord, SpendRecord


@dataclass(frozen=True)
class Outcome:
    """How an episode ends at some thresholds.

    Attributes:
        record: the result line it gives (``None``: not replayable, see the module docstring).
        spend: what it spent asking for help.
        stopped_at: the ranking step the guard stopped it at (``None``: it ran as recorded).
    """

    record: SampleRecord | None
    spend: SpendRecord
    stopped_at: int | None = None


@dataclass(frozen=True)
class EpisodeReplay:
    """One recorded episode: its guard checks and what stopping at each gives.

    Attributes:
        conf, gap: ``(K,)`` what the guard compares at each check, in order.
        outcomes: ``K + 1``: stopping at check ``k``, then passing none.
    """

    example_id: str
    image_id: str
    conf: np.ndarray
    gap: np.ndarray
    outcomes: tuple[Outcome, ...]

    def index(self, tau_conf: float, tau_gap: float) -> int:
        """Which outcome the thresholds give: the first check they pass, else the last one."""
        passes = (self.conf >= tau_conf) & (self.gap >= tau_gap)
        return int(np.argmax(passes)) if passes.any() else len(self.conf)

    def at(self, tau_conf: float, tau_gap: float) -> Outcome:
        return self.outcomes[self.index(tau_conf, tau_gap)]


def _spend(rec: SampleRecord) -> SpendRecord:
    return rec.spent if rec.spent is not None else SpendRecord()


def _ran(rec: SampleRecord, **changes: Any) -> Outcome:
    """The episode as recorded (its stop reason possibly read again by the guard)."""
    return Outcome(rec.model_copy(update=changes) if changes else rec, _spend(rec))


def _picked(steps: list[RankStepRecord], k: int, pick: str) -> RankStepRecord:
    """The final ranking of a prefix ending at step ``k``: the last, or the first most
    confident since the candidates last changed (the workspace keeps its best until a strictly
    higher conf, and starts again when the candidates are replaced or added to)."""
    if pick == "last":
        return steps[k]
    start = k
    while start > 0 and steps[start - 1].proposal_set == steps[k].proposal_set:
        start -= 1
    best = steps[start]
    for step in steps[start + 1 : k + 1]:
        if (step.conf or 0.0) > (best.conf or 0.0):
            best = step
    return best


def stopped(rec: SampleRecord, k: int, pick: str, iterations: int) -> Outcome:
    """The guard passes at ranking step ``k``: the top candidate of the picked ranking."""
    steps = rec.rank_steps
    spend = steps[k].spent or SpendRecord()
    final = _picked(steps, k, pick)
    top = final.candidates[0] if final.candidates else None
    update: dict[str, Any] = {
        "stop_reason": "guard",
        "iterations": iterations,
        "queries": rec.queries[: k + 1],
        "conf": final.conf,
        "gap": final.gap,
        "needed_vlm": spend.vlm_calls > 0,
        "fallback_reason": None,
        "fallback_kind": None,
        "spent": spend,
        "rank_steps": [],
    }
    if top is None or top.iou is None:  # nothing found (an empty ranking), or not scored
        error = "the episode chose no mask" if top is None else "the chosen candidate has no recorded score"
        update |= {"chosen": -1, "failed": True, "error": error, "conf": 0.0, "gap": 0.0}
        update |= {
            "iou": 0.0,
            "inter": 0,
            "union": rec.gt_area,
            "pred_area": None,
            "mask": None,
            "scores": {},
        }
    else:
        update |= {"chosen": top.index, "failed": False, "error": None, "iou": top.iou, "inter": top.inter}
        update |= {"union": top.union, "pred_area": top.pred_area, "scores": dict(top.scores or {})}
        update["mask"] = top.mask
    return Outcome(rec.model_copy(update=update), spend, k)


def _checks(steps: list[RankStepRecord]) -> tuple[np.ndarray, np.ndarray]:
    conf = np.array([s.conf for s in steps], dtype=np.float64)
    gap = np.array([s.gap for s in steps], dtype=np.float64)
    return conf, gap


def _episode(rec: SampleRecord, steps: list[RankStepRecord], outcomes: list[Outcome]) -> EpisodeReplay:
    conf, gap = _checks(steps)
    return EpisodeReplay(rec.example_id, rec.image_id, conf, gap, tuple(outcomes))


def replay_loop(rec: SampleRecord, pick: str) -> EpisodeReplay:
    """``loop``: a check after every ranking; round ``k``'s ranking is step ``k``."""
    steps = rec.rank_steps
    outcomes = [stopped(rec, k, pick, iterations=k) for k in range(len(steps))]
    return _episode(rec, steps, [*outcomes, _ran(rec)])


def replay_ground(rec: SampleRecord, pick: str) -> EpisodeReplay:
    """``ground``: the first ranking's check; after grounding, an unconfirmed drawing's stop
    reason is the guard's verdict on the re-rank (the chosen candidate is the recorded one)."""
    steps = rec.rank_steps
    if not steps:
        return _episode(rec, [], [_ran(rec)])
    first = stopped(rec, 0, pick, iterations=0)
    if rec.stop_reason in ("guard", "max_iter") and len(steps) >= 2:
        checks = [steps[0], steps[-1]]
        return _episode(
            rec, checks, [first, _ran(rec, stop_reason="guard"), _ran(rec, stop_reason="max_iter")]
        )
    return _episode(rec, steps[:1], [first, _ran(rec)])


def replay_agent(rec: SampleRecord, pick: str) -> EpisodeReplay:
    """``agent`` (warm start): the warm-start ranking's check only; past it, not replayable."""
    steps = rec.rank_steps
    if not steps:
        return _episode(rec, [], [_ran(rec)])
    first = stopped(rec, 0, pick, iterations=0)
    settled_at_one = rec.stop_reason == "guard" and len(steps) == 1  # passed even at 1/1
    rest = _ran(rec) if settled_at_one else Outcome(None, _spend(rec))
    return _episode(rec, steps[:1], [first, rest])


REPLAYERS = {"loop": replay_loop, "ground": replay_ground, "agent": replay_agent}


def replay_run(src: FrontierSource) -> list[EpisodeReplay]:
    """Every recorded episode of a run at thresholds 1/1, ready to be stopped sooner.

    Raises:
        FrontierError: the run cannot be replayed (see :func:`check_replayable`).
    """
    check_replayable(src)
    replayer = REPLAYERS[src.controller]
    return [replayer(rec, src.pick) for rec in src.records]


def exact(src: FrontierSource) -> bool:
    """Whether every threshold pair's outcome is in the run (``agent``: only the warm start's)."""
    return src.controller != "agent"


def replayed_records(episodes: list[EpisodeReplay], tau_conf: float, tau_gap: float) -> dict[str, Outcome]:
    """Each example's outcome at ``(tau_conf, tau_gap)``, by example id."""
    return {ep.example_id: ep.at(tau_conf, tau_gap) for ep in episodes}
