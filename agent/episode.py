"""One episode: its configuration, its running state, its result, and the controller protocol.

A controller (``oneshot``, ``loop``, ``ground``, ``agent``; see :data:`agent.controllers.CONTROLLERS`)
is an async callable that drives an :class:`Episode`: it calls tools through
:meth:`Episode.call` (the single invocation path) and sets ``episode.stop_reason``. The
session derives the chosen candidate from the workspace's rankings afterwards, so every
controller ends the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

import numpy as np

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.rank_steps import RankStep, RankSteps
from agent.vlm_reply import VLMReply
from tools.base import Workspace
from tools.errors import ConfigError, ToolError, VLMError
from tools.registry import ToolRegistry
from tools.types import Ranking


class StopReason(StrEnum):
    """Why an episode ended. A ``str``: JSON, traces and reports show the plain value."""

    GUARD = "guard"  # the ranking passed tau_conf / tau_gap
    MAX_ITER = "max_iter"  # out of rounds or turns
    BUDGET = "budget"  # the episode's token or USD budget was spent (agent, ground)
    NOT_FOUND = "not_found"  # ground: the VLM answered that no such object is in the image
    REFINER_EXHAUSTED = "refiner_exhausted"  # the refiner had no query that was not tried yet
    AGENT_SUBMIT = "agent_submit"  # the VLM submitted a candidate
    GROUNDED = "grounded"  # the VLM's box was drawn and the drawn mask chosen (ground)
    FALLBACK = "fallback"  # the VLM or the refiner failed: best candidate so far
    ERROR = "error"  # the example failed (recorded with its error)
    ONESHOT = "oneshot"  # propose, rank, top-1


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode runs; its defaults are the controllers' defaults.

    Attributes:
        controller: a name in :data:`agent.controllers.CONTROLLERS`: ``oneshot`` (propose,
            rank, top-1), ``loop`` (refine while unsure), ``ground`` (when unsure, the VLM
            gives the object's box and the proposer's prompt tool draws it) or ``agent``
            (the VLM drives the tools through function calling). Checked when a session is
            built.
        proposer, ranker, refiner: tool names from the registry.
        max_iter: most refine-and-rerank rounds in ``loop`` (0 makes it one-shot); ``ground``
            grounds once when it is at least 1.
        tau_conf: the guard needs top-1 probability >= tau_conf ...
        tau_gap: ... and top-1 minus top-2 probability >= tau_gap.
        pick: ``best`` keeps the most confident ranking seen; ``last`` the final one.
        propose_args, rank_args: fixed arguments for the proposer and ranker.
        max_turns: most VLM turns in ``agent``.
        agent_warm_start: ``agent`` proposes and ranks before the first VLM turn, so a
            ranking that passes the guard ends the episode without any VLM call, and the
            VLM starts from the ranked candidates otherwise.
        budget_tokens, budget_usd: per-episode VLM budget in ``agent`` and ``ground``.
        max_tool_calls: most tool calls the VLM may have run in one ``agent`` episode (the
            agent needs about ten: propose, a few ranks and refinements, submit); later ones
            are answered with an error. ``submit`` is always run.
        max_calls_per_reply: most tool calls run from one VLM reply; the rest are answered
            with an error.
        episode_timeout_s: wall-clock seconds an episode may take (``None``: no limit); past
            it, the episode falls back to the best candidate so far (stop reason
            ``fallback``, with a note).
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
    max_tool_calls: int = 24
    max_calls_per_reply: int = 6
    episode_timeout_s: float | None = 600.0

    def __post_init__(self) -> None:
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
        if self.max_tool_calls < 1 or self.max_calls_per_reply < 1:
            raise ConfigError("--max-tool-calls and --max-calls-per-reply must be >= 1")
        if self.episode_timeout_s is not None and not self.episode_timeout_s > 0:
            raise ConfigError(f"--episode-timeout must be > 0 seconds, got {self.episode_timeout_s}")

    def passes_guard(self, conf: float, gap: float) -> bool:
        """The ranking is sure enough to stop."""
        return conf >= self.tau_conf and gap >= self.tau_gap


@dataclass
class EpisodeResult:
    """What an episode produced.

    ``mask`` is ``(H, W) bool`` at the input's original size (``None`` when nothing was
    chosen); ``candidate_masks`` are the top-3 candidates' masks at that size, best first,
    matching ``candidates``. ``needed_vlm``: the episode asked the VLM at least once (an agent
    turn, or a call of a VLM-backed tool such as ``refine_query`` with ``--refiner vlm``); an
    episode the guard settled before any VLM call did not need it. ``fallback_reason``: why
    a ``fallback`` episode fell back (one line), else ``None``; ``fallback_kind`` its class
    (:func:`fallback_kind`).
    """

    sample_id: str
    expression: str
    controller: str
    chosen: int = -1
    mask: np.ndarray | None = None
    conf: float = 0.0
    gap: float = 0.0
    iterations: int = 0
    stop_reason: StopReason = StopReason.ERROR
    queries: list[str] = field(default_factory=list)
    costs: CostBook = field(default_factory=CostBook)
    error: str | None = None
    seconds: float = 0.0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    n_proposals: int = 0
    image_size: tuple[int, int] = (0, 0)
    turns: int = 0
    notes: list[str] = field(default_factory=list)
    needed_vlm: bool = False
    fallback_reason: str | None = None
    fallback_kind: str | None = None
    candidate_masks: list[np.ndarray] = field(default_factory=list, repr=False)
    rank_steps: list[RankStep] = field(default_factory=list, repr=False)

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
            "stop_reason": str(self.stop_reason),
            "queries": self.queries,
            "n_proposals": self.n_proposals,
            "candidates": self.candidates,
            "image_size": list(self.image_size),
            "mask_area": int(self.mask.sum()) if self.mask is not None else 0,
            "costs": self.costs.as_dict(),
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "notes": self.notes,
            "needed_vlm": self.needed_vlm,
            "fallback_reason": self.fallback_reason,
            "fallback_kind": self.fallback_kind,
        }


def fallback_kind(exc: BaseException) -> str:
    """A short class of the failure behind a fallback, for tallies: the VLM client's own
    (``http_500``, ``timeout``, ``connection``, ``malformed``...), else ``tool_error`` (e.g. a
    VLM reply without a usable query) or ``vlm_error``."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return "tool_error" if isinstance(exc, ToolError) else "vlm_error"


class Episode:
    """The mutable state of one running episode, handed to the controller.

    Args:
        ws: the workspace (image, expression, proposals, rankings, queries).
        sample_id: identifies the example in traces and results.
        config: controller, tools and guards.
        invoker: runs tools (validate, memoize, trace, account).
        registry: the tools on offer (their classes, schemas and settings).
        log: the logger bound to this episode (events carry its sample id).
    """

    def __init__(
        self,
        ws: Workspace,
        sample_id: str,
        *,
        config: EpisodeConfig,
        invoker: Invoker,
        registry: ToolRegistry,
        log: Any,
    ):
        self.ws = ws
        self.sample_id = sample_id
        self.config = config
        self.invoker = invoker
        self.registry = registry
        self.log = log
        self.costs = CostBook()
        self.step = 0
        self.iterations = 0
        self.turns = 0
        self.stop_reason = StopReason.ERROR
        self.notes: list[str] = []
        self.needed_vlm = False  # a call asked the VLM (see EpisodeResult.needed_vlm)
        self.fallback_reason: str | None = None
        self.fallback_kind: str | None = None
        self.rank_steps = RankSteps()  # every ranking's top candidates, for the result

    def _context(self) -> CallContext:
        return CallContext(costs=self.costs, log=self.log, step=self.step)

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        """Call a tool through the invoker (cache, trace, cost); its output is applied to ``ws``
        (and a ranking's top candidates kept as a ranking step)."""
        self.step += 1
        if self.registry.get(tool).uses_vlm:
            self.needed_vlm = True
        output = await self.invoker.call(tool, self.ws, args, self._context())
        if isinstance(output, Ranking):
            self.rank_steps.capture(self.step, output, self.ws.proposals)
        return output

    async def ask_vlm(self, client: Any, messages: list[dict[str, Any]], **kwargs: Any) -> VLMReply:
        """One chat call made by the controller itself (not through a tool), its cost booked.

        Args:
            client: the VLM client (``complete(messages, **kwargs) -> VLMReply``).
            messages: the chat messages to send.
            **kwargs: passed to ``complete`` (tools, tool_choice, temperature...).

        Raises:
            VLMError: the call failed; its seconds are booked as a failed ``vlm`` call.
        """
        self.needed_vlm = True
        start = time.perf_counter()
        try:
            reply: VLMReply = await client.complete(messages, **kwargs)
        except VLMError:
            self.costs.record("vlm", seconds=time.perf_counter() - start, error=True)
            raise
        self.turns += 1
        self.costs.record(
            "vlm",
            seconds=time.perf_counter() - start,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            usd=reply.usd,
            reasoning_tokens=reply.reasoning_tokens,
        )
        return reply

    def fall_back(self, reason: str, kind: str) -> None:
        """End with the best candidate so far because the VLM (or a VLM-backed tool) failed.

        Args:
            reason: one line, for the result's notes and ``fallback_reason``.
            kind: a short class of the failure for tallies (see :func:`fallback_kind`).
        """
        self.stop_reason = StopReason.FALLBACK
        self.fallback_reason = reason
        self.fallback_kind = kind
        self.notes.append(reason)

    def budget_spent(self) -> str | None:
        """Why the episode may not call the VLM again: its tokens or USD (VLM turns and
        VLM-backed tools together) reached ``budget_tokens`` / ``budget_usd``; ``None``: it may."""
        total, cfg = self.costs.total(), self.config
        tokens = total.tokens_in + total.tokens_out
        if tokens >= cfg.budget_tokens:
            return f"token budget spent ({tokens} >= {cfg.budget_tokens})"
        if total.usd >= cfg.budget_usd:
            return f"USD budget spent ({total.usd:.6f} >= {cfg.budget_usd})"
        return None

    def reject(self, tool: str, args: Any, message: str) -> None:
        """Trace a call that was refused before reaching the invoker (unknown tool, bad JSON)."""
        self.invoker.trace_rejected(tool, args, message, self._context())

    def guard(self, ranking: Ranking) -> bool:
        """Log and return whether the ranking is sure enough to stop."""
        passed = self.config.passes_guard(ranking.conf, ranking.gap)
        self.log.info(
            "guard",
            step=self.step,
            conf=round(ranking.conf, 4),
            gap=round(ranking.gap, 4),
            tau_conf=self.config.tau_conf,
            tau_gap=self.config.tau_gap,
            passed=passed,
        )
        return passed

    def final_ranking(self) -> Ranking | None:
        if self.config.pick == "best" and self.ws.best_ranking is not None:
            return self.ws.best_ranking
        return self.ws.ranking


class Controller(Protocol):
    """Drives one episode to a stop reason (see :data:`agent.controllers.CONTROLLERS`)."""

    async def __call__(self, episode: Episode, /) -> None: ...
