"""Sessions run episodes: one image, one expression, one controller, one result.

A :class:`Session` holds what episodes share (tool registry, invoker with its caches,
tracer, configuration) and is safe to use from many concurrent tasks. Per-example
problems end that episode with ``stop_reason="error"``; configuration problems (a missing
checkpoint, an unknown tool) are raised, since every other example would fail the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from agent.costs import CostBook
from agent.episode import EpisodeConfig, EpisodeResult
from agent.invoke import CallContext, Invoker
from agent.tracing import CURRENT_LOG, Tracer, redact_text
from cache.store import ToolCache
from tools.base import Workspace
from tools.errors import CheckpointError, ConfigError, DownloadError, InputError, ToolError
from tools.images import clean_expression, resize_mask, working_copy
from tools.registry import ToolRegistry
from tools.types import Image, Ranking

Controller = Callable[["Episode"], Awaitable[None]]
# Problems that would fail every example alike: stop the run instead of recording failures.
RUN_LEVEL_ERRORS = (ConfigError, CheckpointError, DownloadError)


def get_controller(name: str) -> Controller:
    from agent import controllers

    if name == "oneshot":
        return controllers.run_oneshot
    if name == "loop":
        return controllers.run_loop
    if name == "agent":
        from agent.agent_controller import run_agent

        return run_agent
    raise ConfigError(f"unknown controller {name!r}; choose one of oneshot, loop, agent")


class Episode:
    """The mutable state of one running episode, handed to the controller."""

    def __init__(self, session: Session, ws: Workspace, sample_id: str):
        self.session = session
        self.config = session.config
        self.ws = ws
        self.sample_id = sample_id
        self.costs = CostBook()
        self.log = session.tracer.bind(sample_id=sample_id)
        self.step = 0
        self.iterations = 0
        self.turns = 0
        self.stop_reason = "error"
        self.notes: list[str] = []

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        """Call a tool through the session's invoker (cache, trace, cost)."""
        self.step += 1
        ctx = CallContext(costs=self.costs, log=self.log, step=self.step)
        return await self.session.invoker.call(tool, self.ws, args, ctx)

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


class Session:
    """Runs episodes with one configuration.

    Args:
        registry: the tools (built with the run's :class:`tools.base.ToolSettings`).
        config: controller, tools and guards.
        cache: disk cache of tool outputs, or ``None`` for memory only.
        tracer: where trace events go (``Tracer(None)`` discards them).
        run_id: identifies the run in traces.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        config: EpisodeConfig | None = None,
        cache: ToolCache | None = None,
        tracer: Tracer | None = None,
        run_id: str | None = None,
    ):
        self.registry = registry
        self.config = config or EpisodeConfig()
        self.invoker = Invoker(registry, cache)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.tracer = tracer or Tracer(None, run_id=self.run_id)
        self.controller = get_controller(self.config.controller)
        for name in (self.config.proposer, self.config.ranker, self.config.refiner):
            registry.spec(name)  # unknown tool names fail now, not per example

    async def run(self, image: Image, expression: str, sample_id: str = "0") -> EpisodeResult:
        """Run one episode. Never raises for per-example problems (see module docstring)."""
        start = time.perf_counter()
        result = EpisodeResult(
            sample_id=sample_id,
            expression=expression,
            controller=self.config.controller,
            image_size=image.size,
        )
        episode: Episode | None = None
        log_token = None
        try:
            text = clean_expression(expression)
            ws = Workspace(
                image=working_copy(image, self.registry.settings.max_side),
                expression=text,
                original_size=image.size,
            )
            episode = Episode(self, ws, sample_id)
            log_token = CURRENT_LOG.set(episode.log)
            episode.log.info(
                "episode_start",
                expression=text,
                controller=self.config.controller,
                image_size=list(image.size),
            )
            await self.controller(episode)
        except RUN_LEVEL_ERRORS:
            raise
        except (InputError, ToolError) as exc:
            result.error = redact_text(str(exc))
        except Exception as exc:  # one broken example must not end a benchmark
            result.error = redact_text(f"{type(exc).__name__}: {exc}")
        finally:
            if log_token is not None:  # later VLM calls in this task are not this episode's
                CURRENT_LOG.reset(log_token)
        if episode is not None:
            self._finish(episode, result)
        result.seconds = time.perf_counter() - start
        log = episode.log if episode is not None else self.tracer.bind(sample_id=sample_id)
        log.info("episode_end", **{k: v for k, v in result.to_json().items() if k != "expression"})
        return result

    def _finish(self, ep: Episode, result: EpisodeResult) -> None:
        ws = ep.ws
        result.queries = list(ws.history)
        result.costs = ep.costs
        result.iterations = ep.iterations
        result.turns = ep.turns
        result.notes = ep.notes
        result.n_proposals = len(ws.proposals) if ws.proposals is not None else 0
        if self.registry.settings.weights == "random":
            result.notes.append("random weights: outputs are for smoke tests and timing only")
        ranking = ep.final_ranking()
        if result.error is not None:
            result.stop_reason = "fallback" if ep.stop_reason == "fallback" else "error"
        else:
            result.stop_reason = ep.stop_reason
        if ranking is None or ws.proposals is None or len(ranking) == 0:
            return
        if len(ranking) != len(ws.proposals):
            # A ranker that does not score every proposal (a plugin bug): its indices cannot
            # be trusted, and indexing the masks with them must not take the run down.
            result.error = result.error or (
                f"{ranking.source or 'the ranker'} scored {len(ranking)} candidates but there "
                f"are {len(ws.proposals)} proposals; no mask chosen"
            )
            result.stop_reason = "error"
            return
        result.chosen = ranking.top
        result.conf, result.gap = ranking.conf, ranking.gap
        mask = ws.proposals.masks[result.chosen]
        result.mask = resize_mask(mask, ws.original_size)
        scale_y = ws.original_size[0] / ws.image.height
        scale_x = ws.original_size[1] / ws.image.width
        for i in ranking.order[:3]:
            result.candidate_masks.append(resize_mask(ws.proposals.masks[int(i)], ws.original_size))
            box = ws.proposals.boxes[int(i)] * np.array([scale_x, scale_y, scale_x, scale_y])
            result.candidates.append(
                {
                    "index": int(i),
                    "prob": round(float(ranking.probs[i]), 6),
                    "score": round(float(ranking.scores[i]), 6),
                    "box_xyxy": [round(float(v), 1) for v in box],
                }
            )
