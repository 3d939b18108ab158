"""Sessions run episodes: one image, one expression, one controller, one result.

A :class:`Session` holds what episodes share (tool registry, invoker with its caches,
tracer, configuration) and is safe to use from many concurrent tasks. Per-example
problems end that episode with ``stop_reason="error"``; configuration problems (a missing
checkpoint, an unknown tool) are raised, since every other example would fail the same way.
"""

from __future__ import annotations

import time
import uuid

import anyio
import anyio.to_thread
import numpy as np

from agent.controllers import get_controller, no_vlm_message
from agent.episode import Episode, EpisodeConfig, EpisodeResult, StopReason
from agent.invoke import Invoker
from agent.loop_controller import ensure_ranking
from agent.prompt_tools import prompt_tool_name, require_prompt_tool
from agent.tracing import CURRENT_LOG, Tracer, redact_text
from agent.transcript import CURRENT_TRANSCRIPT, Transcript
from cache.store import ToolCache
from tools.base import Workspace
from tools.coords import map_box
from tools.errors import (
    CheckpointError,
    ConfigError,
    DownloadError,
    InputError,
    ToolError,
    VLMAuthError,
)
from tools.images import clean_expression, resize_mask, working_copy
from tools.registry import ToolRegistry
from tools.types import Image, Proposals, Ranking

# Problems that would fail every example alike: stop the run instead of recording failures
# (a VLM that rejects the key or has no such model would turn every VLM example into a
# silent fallback).
RUN_LEVEL_ERRORS = (ConfigError, CheckpointError, DownloadError, VLMAuthError)


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
        # What the controller's spec needs is checked now, not per example: its name, its
        # options, a VLM and a prompt tool when it requires them, the tools' options.
        cfg = self.config
        self.spec = get_controller(cfg.controller)
        self.controller = self.spec.run
        self.options = self.spec.options(cfg.controller_options.get(cfg.controller))
        if self.spec.vlm == "required" and registry.settings.vlm is None:
            raise ConfigError(no_vlm_message(cfg.controller))
        if self.spec.prompt_tool == "required":
            require_prompt_tool(registry, cfg.proposer, cfg.controller)
        prompt = prompt_tool_name(registry, cfg.proposer) if self.spec.prompt_tool != "none" else None
        used = (*([cfg.refiner] if self.spec.refines else []), *([prompt] if prompt else []))
        registry.check_options(dict.fromkeys((cfg.proposer, cfg.ranker, *used)))

    async def setup(self) -> float:
        """Build the episode's tools and load their models now; returns the seconds it took.

        A run calls it once before its first example, so the one-time start-up (importing
        and building the tools the controller may call, hashing checkpoints, loading weights)
        is booked as run set-up, not as the first episode's cost, never blocks the event loop,
        and a missing checkpoint stops the run before any example.

        Raises:
            CheckpointError, ConfigError, ...: the problems every example would hit.
        """
        start = time.perf_counter()
        await anyio.to_thread.run_sync(self._set_up_tools)  # imports, builds, loads: off the loop
        prepare = getattr(self.registry.settings.vlm, "prepare", None)
        if prepare is not None:  # the VLM client's connection set-up, off the loop too
            await prepare()
        return time.perf_counter() - start

    def tools_used(self) -> list[str]:
        """The tools the controller may call: proposer, ranker, the refiner when it refines, the
        prompt tool when it draws, and what its spec adds (``more_tools``). Reads declarations
        only (no tool module is imported for a declared tool)."""
        cfg, spec = self.config, self.spec
        names = [cfg.proposer, cfg.ranker, *([cfg.refiner] if spec.refines else [])]
        if spec.prompt_tool != "none":
            names += [p for p in [prompt_tool_name(self.registry, cfg.proposer)] if p]
        if spec.more_tools is not None:
            names += spec.more_tools(self.registry, cfg)
        return list(dict.fromkeys(names))

    def _set_up_tools(self) -> None:
        """Import, build and set up every tool the controller may call (blocking)."""
        for name in self.tools_used():
            self.registry.get(name).setup()

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
        log_token = transcript_token = None
        try:
            episode = self._open(image, expression, sample_id)
            log_token = CURRENT_LOG.set(episode.log)
            transcript_token = CURRENT_TRANSCRIPT.set(Transcript(self.tracer))
            await self._drive(episode)
        except RUN_LEVEL_ERRORS:
            raise
        except (InputError, ToolError) as exc:
            result.error = redact_text(str(exc))
        except Exception as exc:  # one broken example must not end a benchmark
            result.error = redact_text(f"{type(exc).__name__}: {exc}")
        finally:
            if log_token is not None:  # later VLM calls in this task are not this episode's
                CURRENT_LOG.reset(log_token)
            if transcript_token is not None:
                CURRENT_TRANSCRIPT.reset(transcript_token)
        if episode is not None:
            self._finish(episode, result)
        result.seconds = time.perf_counter() - start
        log = episode.log if episode is not None else self.tracer.bind(sample_id=sample_id)
        log.info("episode_end", **{k: v for k, v in result.to_json().items() if k != "expression"})
        return result

    async def _drive(self, ep: Episode) -> None:
        """The controller, under the episode's deadline; past it, fall back to the best
        candidate so far (proposing and ranking directly, without the VLM, if there is none)."""
        timeout = self.config.episode_timeout_s
        with anyio.move_on_after(timeout) as scope:
            await self.controller(ep)
        if not scope.cancelled_caught:
            return
        ep.stop_reason = StopReason.FALLBACK
        ep.notes.append(f"episode timed out after {timeout:g} s: fell back to the best candidate so far")
        ep.log.info("episode_timeout", step=ep.step, timeout_s=timeout, turns=ep.turns)
        await ensure_ranking(ep)

    def _open(self, image: Image, expression: str, sample_id: str) -> Episode:
        """The episode's workspace and state, announced in the trace.

        Raises:
            InputError: an empty or absurd expression.
        """
        text = clean_expression(expression)
        ws = Workspace(
            image=working_copy(image, self.registry.settings.max_side),
            expression=text,
            original_size=image.size,
        )
        episode = Episode(
            ws,
            sample_id,
            config=self.config,
            invoker=self.invoker,
            registry=self.registry,
            log=self.tracer.bind(sample_id=sample_id),
            options=self.options,
        )
        episode.log.info(
            "episode_start",
            expression=text,
            controller=self.config.controller,
            image_size=list(image.size),
        )
        return episode

    def _finish(self, ep: Episode, result: EpisodeResult) -> None:
        """Fill ``result`` from the ended episode: its record, then the chosen candidate."""
        ws = ep.ws
        result.queries = list(ws.history)
        result.costs = ep.costs
        result.iterations = ep.iterations
        result.turns = ep.turns
        result.notes = ep.notes
        result.needed_vlm = ep.needed_vlm
        result.fallback_reason = redact_text(ep.fallback_reason) if ep.fallback_reason else None
        result.fallback_kind = ep.fallback_kind
        result.n_proposals = len(ws.proposals) if ws.proposals is not None else 0
        result.rank_steps = ep.rank_steps.finish(ws.original_size)
        result.spend = ep.spend()
        if self.registry.settings.weights == "random":
            result.notes.append("random weights: outputs are for smoke tests and timing only")
        if result.error is not None:
            failed_on_fallback = ep.stop_reason == StopReason.FALLBACK
            result.stop_reason = StopReason.FALLBACK if failed_on_fallback else StopReason.ERROR
        else:
            result.stop_reason = ep.stop_reason
        ranking = ep.final_ranking()
        if ranking is not None and ws.proposals is not None and len(ranking) > 0:
            _choose(ws, ws.proposals, ranking, result)
        if result.stop_reason == StopReason.NOT_FOUND and (ep.config.answers_empty or result.mask is None):
            # "No such object" as the answer: an empty mask (the ranking stays in the record).
            result.mask, result.chosen = np.zeros(ws.original_size, dtype=bool), -1
            result.notes.append("not_found: answered with an empty mask")


def _choose(ws: Workspace, proposals: Proposals, ranking: Ranking, result: EpisodeResult) -> None:
    """The ranking's top candidate as the result's mask (at the input's size), plus the top 3."""
    if len(ranking) != len(proposals):
        # A ranker that does not score every proposal (a plugin bug): its indices cannot
        # be trusted, and indexing the masks with them must not take the run down.
        result.error = result.error or (
            f"{ranking.source or 'the ranker'} scored {len(ranking)} candidates but there "
            f"are {len(proposals)} proposals; no mask chosen"
        )
        result.stop_reason = StopReason.ERROR
        return
    result.chosen = ranking.top
    result.conf, result.gap = ranking.conf, ranking.gap
    if len(ranking) > 1 and float(ranking.scores.max() - ranking.scores.min()) == 0.0:
        # e.g. a ranker that knows no word of the query: the "choice" is the first index.
        result.notes.append(
            f"{ranking.source or 'the ranker'} gave all {len(ranking)} candidates the same "
            f"score for {ranking.query!r}: the choice is arbitrary"
        )
    result.mask = resize_mask(proposals.masks[result.chosen], ws.original_size)
    for i in ranking.order[:3]:
        result.candidate_masks.append(resize_mask(proposals.masks[int(i)], ws.original_size))
        box = map_box(proposals.boxes[int(i)], ws.working_frame, ws.original_frame)
        result.candidates.append(
            {
                "index": int(i),
                "prob": round(float(ranking.probs[i]), 6),
                "score": round(float(ranking.scores[i]), 6),
                "box_xyxy": [round(float(v), 1) for v in box],
                "origin": str(proposals.origins[int(i)]),
            }
        )
