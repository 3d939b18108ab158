"""The candidates of every ranking an episode made: its ranking steps, for the result.

Each ranking (the loop's re-ranks, the agent's ranks, ``ground``'s re-rank after drawing)
keeps its top :data:`TOP_K` candidates (proposal index, probability, origin and mask), and
the masks a prompt tool drew from the VLM's box or points wherever they rank (at most
:data:`TOP_K` more): a drawn mask the VLM then submits is often not among the ranker's top. The
masks are kept bit-packed at the working copy's size while the episode runs (a few KB each,
however many episodes are in flight) and mapped back to the original image's size when
the episode ends, so a record's masks all live in one frame.

Each step also keeps what the guard saw (the ranking's exact ``conf`` and ``gap``) and what
the episode had spent asking for help when the ranking was made (:class:`agent.costs.Spend`):
with them a run at ``tau_conf = tau_gap = 1`` replays the guard at any other thresholds
(``refseg bench frontier``). A guard check of an empty ranking (a text-conditioned proposer
found nothing) is a step without candidates, and ``proposal_set`` counts the times the
candidates were replaced or added to (the workspace's best ranking starts again then).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.costs import Spend
from tools.images import resize_mask
from tools.types import Proposals, Ranking

TOP_K = 4  # candidates kept per ranking step


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate of a ranking step; ``mask`` is ``(H, W) bool`` at the original size.

    ``key`` is ``(proposals digest, index)``: candidates with equal keys and sizes have equal
    masks, so what is derived from a mask alone (its RLE) can be kept across episodes.
    """

    index: int
    prob: float
    origin: str
    mask: np.ndarray
    key: tuple[str, int] | None = None


@dataclass(frozen=True)
class RankStep:
    """One ranking: the episode step that made it, its query and its top candidates; ``conf``
    and ``gap`` as the guard compared them, ``spend`` what the episode had spent asking for
    help up to this ranking."""

    step: int
    query: str
    candidates: tuple[RankedCandidate, ...]
    conf: float = 0.0
    gap: float = 0.0
    spend: Spend = field(default_factory=Spend)
    proposal_set: int = 0


@dataclass(frozen=True)
class _Captured:
    step: int
    query: str
    keys: tuple[tuple[str, int], ...]  # (proposals digest, index) of each candidate
    probs: tuple[float, ...]
    origins: tuple[str, ...]
    conf: float
    gap: float
    spend: Spend
    proposal_set: int


class RankSteps:
    """Collects an episode's ranking steps (see the module docstring).

    A candidate that several rankings share (the loop re-ranks the same proposals) is packed,
    resized and later encoded once: its steps share one mask array.
    """

    def __init__(self, top_k: int = TOP_K):
        self.top_k = top_k
        self._steps: list[_Captured] = []
        self._packed: dict[tuple[str, int], tuple[np.ndarray, tuple[int, int]]] = {}
        self._digest: str | None = None  # of the candidates the last step ranked
        self._set = 0  # times they changed (see the module docstring)

    def __len__(self) -> int:
        return len(self._steps)

    def capture(
        self, step: int, ranking: Ranking, proposals: Proposals | None, spend: Spend | None = None
    ) -> None:
        """Keep ``ranking``'s top candidates and drawn ones (a ranking that does not index
        ``proposals`` is skipped: its indices point at nothing), its conf and gap, and
        ``spend``: what the episode had spent asking for help up to it."""
        if proposals is None or len(ranking) != len(proposals) or len(ranking) == 0:
            return
        self._next_set(proposals.digest)
        ranked = [int(i) for i in ranking.order]
        drawn = [i for i in ranked[self.top_k :] if proposals.origins[i] != proposals.source]
        order = ranked[: self.top_k] + drawn[: self.top_k]
        keys = tuple((proposals.digest, i) for i in order)
        for key, i in zip(keys, order, strict=True):
            if key not in self._packed:
                mask = proposals.masks[i]
                self._packed[key] = (np.packbits(mask, axis=None), (int(mask.shape[0]), int(mask.shape[1])))
        self._steps.append(
            _Captured(
                step=step,
                query=ranking.query,
                keys=keys,
                probs=tuple(round(float(ranking.probs[i]), 6) for i in order),
                origins=tuple(str(proposals.origins[i]) for i in order),
                conf=ranking.conf,
                gap=ranking.gap,
                spend=spend or Spend(),
                proposal_set=self._set,
            )
        )

    def capture_empty(self, step: int, ranking: Ranking, proposals: Proposals | None, spend: Spend) -> None:
        """Keep a guard check of an empty ranking ("nothing found"): a step without candidates."""
        self._next_set(proposals.digest if proposals is not None else "")
        self._steps.append(
            _Captured(step, ranking.query, (), (), (), ranking.conf, ranking.gap, spend, self._set)
        )

    def _next_set(self, digest: str) -> None:
        if self._digest is not None and digest != self._digest:
            self._set += 1
        self._digest = digest

    def finish(self, size: tuple[int, int]) -> list[RankStep]:
        """The steps with their masks at ``size = (H, W)`` (the original image's)."""
        masks: dict[tuple[str, int], np.ndarray] = {}
        for key, (packed, shape) in self._packed.items():
            mask = np.unpackbits(packed, count=shape[0] * shape[1]).astype(bool).reshape(shape)
            masks[key] = resize_mask(mask, size)
        return [
            RankStep(
                s.step,
                s.query,
                tuple(
                    RankedCandidate(key[1], prob, origin, masks[key], key)
                    for key, prob, origin in zip(s.keys, s.probs, s.origins, strict=True)
                ),
                s.conf,
                s.gap,
                s.spend,
                s.proposal_set,
            )
            for s in self._steps
        ]
