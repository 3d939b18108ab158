"""Episode configuration and result types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agent.costs import CostBook
from tools.errors import ConfigError

CONTROLLERS = ("oneshot", "loop", "agent")
StopReason = Literal["guard", "max_iter", "agent_submit", "fallback", "error", "oneshot"]


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode runs.

    Attributes:
        controller: ``oneshot`` (propose, rank, top-1), ``loop`` (refine while unsure) or
            ``agent`` (the VLM drives the tools through function calling).
        proposer, ranker, refiner: tool names from the registry.
        max_iter: most refine-and-rerank rounds in ``loop`` (0 makes it one-shot).
        tau_conf: the guard needs top-1 probability >= tau_conf ...
        tau_gap: ... and top-1 minus top-2 probability >= tau_gap.
        pick: ``best`` keeps the most confident ranking seen; ``last`` the final one.
        propose_args, rank_args: fixed arguments for the proposer and ranker.
        max_turns: most VLM turns in ``agent``.
        agent_warm_start: ``agent`` proposes and ranks before the first VLM turn, so a
            ranking that passes the guard ends the episode without any VLM call, and the
            VLM starts from the ranked candidates otherwise.
        budget_tokens, budget_usd: per-episode VLM budget in ``agent``.
    """

    controller: str = "loop"
    proposer: str = "sam_propose"
    ranker: str = "clip_rank"
    refiner: str = "refine_query"
    max_iter: int = 3
    tau_conf: float = 0.5
    tau_gap: float = 0.2
    pick: Literal["best", "last"] = "best"
    propose_args: dict[str, Any] = field(default_factory=dict)
    rank_args: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 8
    agent_warm_start: bool = True
    budget_tokens: int = 60_000
    budget_usd: float = 0.05

    def __post_init__(self) -> None:
        if self.controller not in CONTROLLERS:
            raise ConfigError(
                f"unknown controller {self.controller!r}; choose one of {', '.join(CONTROLLERS)}"
            )
        if self.max_iter < 0:
            raise ConfigError("--max-iter must be >= 0")
        for name in ("tau_conf", "tau_gap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.pick not in ("best", "last"):
            raise ConfigError("--pick must be 'best' or 'last'")
        if self.max_turns < 1:
            raise ConfigError("--max-turns must be >= 1")

    def passes_guard(self, conf: float, gap: float) -> bool:
        """The ranking is sure enough to stop."""
        return conf >= self.tau_conf and gap >= self.tau_gap


@dataclass
class EpisodeResult:
    """What an episode produced.

    ``mask`` is ``(H, W) bool`` at the input's original size (``None`` when nothing was
    chosen); ``candidate_masks`` are the top-3 candidates' masks at that size, best first,
    matching ``candidates``.
    """

    sample_id: str
    expression: str
    controller: str
    chosen: int = -1
    mask: np.ndarray | None = None
    conf: float = 0.0
    gap: float = 0.0
    iterations: int = 0
    stop_reason: str = "error"
    queries: list[str] = field(default_factory=list)
    costs: CostBook = field(default_factory=CostBook)
    error: str | None = None
    seconds: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    n_proposals: int = 0
    image_size: tuple[int, int] = (0, 0)
    turns: int = 0
    notes: list[str] = field(default_factory=list)
    candidate_masks: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary (the mask itself is written separately)."""
        return {
            "sample_id": self.sample_id,
            "expression": self.expression,
            "controller": self.controller,
            "chosen": self.chosen,
            "conf": round(self.conf, 6),
            "gap": round(self.gap, 6),
            "iterations": self.iterations,
            "turns": self.turns,
            "stop_reason": self.stop_reason,
            "queries": self.queries,
            "n_proposals": self.n_proposals,
            "candidates": self.candidates,
            "image_size": list(self.image_size),
            "mask_area": int(self.mask.sum()) if self.mask is not None else 0,
            "costs": self.costs.as_dict(),
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "notes": self.notes,
        }
