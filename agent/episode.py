"""One episode: its configuration, its running state, its result, and the controller protocol.

A controller (``oneshot``, ``loop``, ``ground``, ``agent`` or a plugin's; declared by a
:class:`agent.controllers.ControllerSpec`) is an async callable that drives an
:class:`Episode`: it calls tools through :meth:`Episode.call` (the single invocation path)
and sets ``episode.stop_reason``; its own settings are :meth:`Episode.options_as`. The
session derives the chosen candidate from the workspace's rankings afterwards, so every
controller ends the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from agent.costs import CostBook, Spend
from agent.invoke import CallContext, Invoker
from agent.rank_steps import RankStep, RankSteps
from agent.vlm_reply import VLMReply
from tools.base import Workspace
from tools.errors import ConfigError, ToolError, VLMError
from tools.registry import ToolRegistry
from tools.types import Ranking

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class StopReason(StrEnum):
    """Why an episode ended. A ``str``: JSON, traces and reports show the plain value."""

    GUARD = "guard"  # the ranking passed tau_conf / tau_gap
    MAX_ITER = "max_iter"  # out of rounds or turns
    BUDGET = "budget"  # the episode's token or USD budget was spent (agent, ground)
    NOT_FOUND = "not_found"  # no such object is in the image (the VLM, or a proposer, said so)
    REFINER_EXHAUSTED = "refiner_exhausted"  # the refiner had no query that was not tried yet
    AGENT_SUBMIT = "agent_submit"  # the VLM submitted a candidate
    GROUNDED = "grounded"  # the VLM's box was drawn and the drawn mask chosen (ground)
    FALLBACK = "fallback"  # the VLM or the refiner failed: best candidate so far
    ERROR = "error"  # the example failed (recorded with its error)
    ONESHOT = "oneshot"  # propose, rank, top-1


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode runs: what every controller shares, and each controller's own options.

    The fields below hold for every controller (the session and :class:`Episode` enforce
    them); a controller's own settings (the agent's turns and tool-call limits, the VLM
    budgets and coordinates of ``agent`` and ``ground``, a plugin's) are its spec's
    ``Options``, given in ``controller_options`` and validated when a session is built.

    Attributes:
        controller: a controller's name (:func:`agent.controllers.controller_names`):
            ``oneshot`` (propose, rank, top-1), ``loop`` (refine while unsure), ``ground``
            (when unsure, the VLM gives the object's box and the proposer's prompt tool draws
            it), ``agent`` (the VLM drives the tools through function calling) or a plugin's.
            Checked when a session is built.
        proposer, ranker, refiner: tool names from the registry.
        max_iter: most closed-loop rounds: refine-and-rerank rounds in ``loop`` (0 makes it
            one-shot); ``ground`` grounds once when it is at least 1. Shared, not a controller
            option: it is the suite's axis and the reports' label (``loop(rules) x3``).
        tau_conf: the guard needs top-1 probability >= tau_conf ...
        tau_gap: ... and top-1 minus top-2 probability >= tau_gap.
        pick: ``best`` keeps the most confident ranking seen; ``last`` the final one.
        propose_args, rank_args: fixed arguments for the proposer and ranker.
        episode_timeout_s: wall-clock seconds an episode may take (``None``: no limit); past
            it, the episode falls back to the best candidate so far (stop reason
            ``fallback``, with a note).
        controller_options: settings by controller name (``--controller-option
            NAME.KEY=VALUE``); the running controller's are validated against its spec's
            ``Options`` (defaults filled in) and handed to it as ``Episode.options``.
        not_found: the answer when the controller says no such object is there (stop reason
            ``not_found``): ``keep`` its best candidate (every expression of the data set has
            a target), ``empty`` an empty mask (data sets with no-target expressions, such as
            gRefCOCO); ``None``: the data set's protocol decides (``bench run``), else
            ``keep``. An episode that found no candidate at all answers empty either way.
            With ``empty`` the controllers are also offered that answer (the agent's ``submit``
            takes ``no_match``, the loop's refiner may reply that nothing matches).
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
    episode_timeout_s: float | None = 600.0
    controller_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_found: Literal["keep", "empty"] | None = None

    def __post_init__(self) -> None:
        if self.max_iter < 0:
            raise ConfigError("--max-iter must be >= 0")
        for name in ("tau_conf", "tau_gap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.pick not in ("best", "last"):
            raise ConfigError("--pick must be 'best' or 'last'")
        if self.not_found not in (None, "keep", "empty"):
            raise ConfigError(f"--not-found must be 'keep' or 'empty', got {self.not_found!r}")
        if self.episode_timeout_s is not None and not self.episode_timeout_s > 0:
            raise ConfigError(f"--episode-timeout must be > 0 seconds, got {self.episode_timeout_s}")

    @property
    def answers_empty(self) -> bool:
        """``not_found`` is answered with an empty mask (and the controllers may give it)."""
        return self.not_found == "empty"

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
    spend: Spend = field(default_factory=Spend)

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
    """A short class of the failure behind a fallback, for tallies: the error's own ``kind``
    (the VLM client's ``http_500``, ``timeout``, ``connection``, ``malformed``, ``oversized``...;
    an answer too long to read is ``oversized``), else ``tool_error`` (e.g. a VLM reply without
    a usable query) or ``vlm_error``."""
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
        options: the controller's validated options (its spec's ``Options``; read them with
            :meth:`options_as`).
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
        options: BaseModel | None = None,
    ):
        self.ws = ws
        self.sample_id = sample_id
        self.config = config
        self.options = options
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
        self._vlm_tools: set[str] = set()  # tools called that ask the VLM (see spend)

    def _context(self) -> CallContext:
        return CallContext(costs=self.costs, log=self.log, step=self.step)

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        """Call a tool through the invoker (cache, trace, cost); its output is applied to ``ws``
        (and a ranking's top candidates kept as a ranking step)."""
        self.step += 1
        if self.registry.get(tool).uses_vlm:
            self.needed_vlm = True
            self._vlm_tools.add(tool)
        output = await self.invoker.call(tool, self.ws, args, self._context())
        if isinstance(output, Ranking):
            self.rank_steps.capture(self.step, output, self.ws.proposals, self.spend())
        return output

    def spend(self) -> Spend:
        """What the episode has spent asking for help so far: VLM calls, the refiner's and the
        VLM's calls, tokens and USD (see :class:`agent.costs.Spend`)."""
        return self.costs.spend(self._vlm_tools, (self.config.refiner,))

    async def ask_vlm(self, client: Any, messages: list[dict[str, Any]], **kwargs: Any) -> VLMReply:
        """One chat call made by the controller itself (not through a tool), its cost booked.

        Args:
            client: the VLM client (``complete(messages, **kwargs) -> VLMReply``).
            messages: the chat messages to send.
            **kwargs: passed to ``complete`` (tools, tool_choice, temperature...).

        Time the request waited for the endpoint's limits (``--vlm-max-concurrency``, ``--vlm-rpm``,
        ``--vlm-tpm``, a 429's ``Retry-After``) and between its retries is booked as wait (and
        VLM wait), the rest as the call's seconds.

        Raises:
            VLMError: the call failed; its seconds are booked as a failed ``vlm`` call.
        """
        self.needed_vlm = True
        start = time.perf_counter()
        try:
            reply: VLMReply = await client.complete(messages, **kwargs)
        except VLMError as exc:
            waited = float(getattr(exc, "wait_s", 0.0))
            seconds = time.perf_counter() - start - waited
            self.costs.record(
                "vlm", seconds=seconds, wait_seconds=waited, vlm_wait_seconds=waited, error=True
            )
            raise
        self.turns += 1
        waited = float(getattr(reply, "wait_s", 0.0))  # the VLM limits' and the retries' waits
        self.costs.record(
            "vlm",
            seconds=time.perf_counter() - start - waited,
            wait_seconds=waited,
            vlm_wait_seconds=waited,
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

    def options_as(self, model: type[OptionsT]) -> OptionsT:
        """The controller's options as ``model`` (its spec's ``Options``); its defaults when
        the episode was built without options (a controller called directly).

        Raises:
            ConfigError: the options are of another model (a run function used by a spec
                whose ``Options`` it does not read).
        """
        if self.options is None:
            return model()
        if not isinstance(self.options, model):
            raise ConfigError(
                f"controller {self.config.controller} reads {model.__name__} options but its spec "
                f"declares {type(self.options).__name__}"
            )
        return self.options

    def budget_spent(self, budget_tokens: int, budget_usd: float) -> str | None:
        """Why the episode may not call the VLM again: its tokens or USD (VLM turns and
        VLM-backed tools together) reached ``budget_tokens`` / ``budget_usd``; ``None``: it may."""
        total = self.costs.total()
        tokens = total.tokens_in + total.tokens_out
        if tokens >= budget_tokens:
            return f"token budget spent ({tokens} >= {budget_tokens})"
        if total.usd >= budget_usd:
            return f"USD budget spent ({total.usd:.6f} >= {budget_usd})"
        return None

    def reject(self, tool: str, args: Any, message: str) -> None:
        """Trace a call that was refused before reaching the invoker (unknown tool, bad JSON)."""
        self.invoker.trace_rejected(tool, args, message, self._context())

    def guard(self, ranking: Ranking) -> bool:
        """Log and return whether the ranking is sure enough to stop (an empty ranking, which no
        tool call returned, is kept as a ranking step here: the check is recorded)."""
        if len(ranking) == 0:
            self.rank_steps.capture_empty(self.step, ranking, self.ws.proposals, self.spend())
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
    """Drives one episode to a stop reason (a :class:`agent.controllers.ControllerSpec`'s ``run``)."""

    async def __call__(self, episode: Episode, /) -> None: ...
