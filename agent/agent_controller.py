"""The ``agent`` controller: the VLM drives the tools through function calling.

The model sees the expression and the image, and the episode's proposer, ranker and refiner
(plus the proposer's prompt tool when it has one, and every registry tool of role ``other``)
as OpenAI function schemas generated from the tools' pydantic parameters, and a ``submit``
function. A prompt tool's masks join the candidates (the model ranks, then submits them).
Every tool call goes through ``Episode.call`` (cache, trace, cost), and each answer is a
compact JSON tool message.

The guards still hold: a ranking that passes ``tau_conf``/``tau_gap`` ends the episode at
once, with no further VLM turn (that is what makes the agent cheap when CLIP is sure).
``max_turns`` and the token/USD budget end it with ``max_iter``; at most
``max_calls_per_reply`` calls of one reply and ``max_tool_calls`` calls per episode are run,
the others are answered with a short error (these are its options,
:class:`agent.controller_options.AgentOptions`). Unknown tools, bad JSON,
schema-invalid arguments and ``ToolError`` go back to the model as errors. When the VLM
fails (``VLMError``) or answers twice without a tool call, the episode falls back to the
best CLIP candidate, proposing and ranking directly if needed. Every path records a stop
reason; the chosen candidate is read from the workspace's rankings afterwards.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agent.agent_prompts import (
    NUDGE,
    opening_messages,
    overlay_candidates,
    overlay_message,
    prompt_payload,
    tool_payload,
)
from agent.agent_tools import offered_tools, other_tools
from agent.call_styles import CallStyle
from agent.controller_options import AgentOptions
from agent.controllers import ControllerSpec, no_vlm_message
from agent.episode import Episode, StopReason, fallback_kind
from agent.invoke import format_validation_error
from agent.loop_controller import ensure_ranking, propose_and_rank
from agent.prompt_tools import added_indices, log_prompt, prompt_tool_name, show_image, view_schema
from agent.submit import SUBMIT, SubmittedRanking, submit_params, submit_schema
from agent.vlm_profile import profile_of
from agent.vlm_reply import ToolCall, VLMReply, shorten
from tools.errors import ConfigError, ToolError, VLMError
from tools.types import Proposals, Ranking

MAX_ERROR_CHARS = 1_000  # an error sent back to the model: enough to act on, never its input whole


class _Stop(Exception):
    """Raised inside the loop to end the episode with ``reason`` (and a note for the result)."""

    def __init__(self, reason: StopReason, note: str | None = None, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.note = note
        self.kind = kind  # a fallback's kind (see agent.episode.fallback_kind)


class AgentRun:
    """One agent episode: the conversation, the tools offered and the stopping rules."""

    def __init__(self, ep: Episode, client: Any):
        self.ep = ep
        self.client = client
        self.cfg = ep.config
        self.opts = ep.options_as(AgentOptions)
        self.tool_names, skipped = offered_tools(ep.registry, self.cfg)
        self.prompt_tool = prompt_tool_name(ep.registry, self.cfg.proposer)
        self.schemas = [ep.registry.declaration(n).shared_schema() for n in self.tool_names]
        self.schemas.append(submit_schema(self.cfg.answers_empty))
        self.defaults = {
            self.cfg.proposer: dict(self.cfg.propose_args),
            self.cfg.ranker: dict(self.cfg.rank_args),
        }
        self.messages: list[dict[str, Any]] = []
        self.nudged = False
        self.rank_calls = 0
        self.tool_calls = 0  # calls the VLM asked for that reached a tool
        self.overlay_at: int | None = None  # message index of the latest overlay
        self.last_overlay: tuple[int, ...] = ()
        ep.log.info("agent_tools", step=ep.step, tools=[*self.tool_names, SUBMIT], skipped=skipped)
        self.image_url = show_image(ep)
        view = ep.ws.shown_view()  # the prompt tool's coordinates are described in its convention
        self.schemas = [
            view_schema(s, view) if s["function"]["name"] == self.prompt_tool else s for s in self.schemas
        ]
        self.style = CallStyle(profile_of(client).tool_calls, self.schemas)

    # -- conversation ------------------------------------------------------------------

    def _opening(self) -> None:
        core = {self.cfg.proposer, self.cfg.ranker, self.cfg.refiner, self.prompt_tool}
        others = [(n, self.ep.registry.declaration(n).description) for n in self.tool_names if n not in core]
        ws = self.ep.ws
        text_proposer = self.ep.registry.declaration(self.cfg.proposer).text_conditioned
        self.messages = opening_messages(
            self.cfg, others, ws.expression, self.image_url, ws.shown_view(), self.prompt_tool, text_proposer
        )
        self.messages[0]["content"] += self.style.system_text()  # text calls: the tools described

    def _payload(self, output: Any) -> str:
        return json.dumps(tool_payload(output, self.ep.ws, self.cfg.ranker))

    def _overlay(self, ranking: Ranking) -> dict[str, Any] | None:
        """A small user image message outlining the top candidates (None when it adds nothing)."""
        props = self.ep.ws.proposals
        top = overlay_candidates(self.ep.ws, ranking)
        if not top or props is None or top == self.last_overlay:
            return None  # nothing to show, or the model has seen exactly these outlines
        self.last_overlay = top
        return overlay_message(self.ep.ws, top)

    def _add_overlay(self, message: dict[str, Any]) -> None:
        if self.overlay_at is not None:  # only the latest overlay is worth its image tokens
            self.messages[self.overlay_at] = {"role": "user", "content": "(older candidate overlay removed)"}
        self.overlay_at = len(self.messages)
        self.messages.append(message)

    # -- tools -------------------------------------------------------------------------

    def _reject(self, name: str, args: Any, message: str) -> str:
        self.ep.reject(name, args, message)  # the tracer bounds what it writes
        return json.dumps({"error": shorten(message, MAX_ERROR_CHARS)})

    async def _execute(self, call: ToolCall) -> tuple[str, dict[str, Any] | None]:
        """Run one requested call; returns the tool message content and an overlay (or None).

        Raises:
            _Stop: a submit or a ranking that passes the guard ends the episode.
        """
        name, raw = call.name, call.arguments
        if name != SUBMIT and name not in self.tool_names:
            known = ", ".join([*self.tool_names, SUBMIT])
            return self._reject(name, raw, f"unknown tool {call.short_name!r}; available: {known}"), None
        try:
            args = call.parse_arguments()
        except ValueError as exc:
            return self._reject(name, raw, str(exc)), None
        if name == SUBMIT:
            return self._submit(args), None
        self.tool_calls += 1
        return await self._run_tool(name, args)

    def _refusal(self, index: int, call: ToolCall) -> str | None:
        """Why this call of a reply is not run (a cap), or None when it may run."""
        opts = self.opts
        if index >= opts.max_calls_per_reply:
            return f"not run: at most {opts.max_calls_per_reply} tool calls of one reply are run"
        if call.name != SUBMIT and self.tool_calls >= opts.max_tool_calls:
            return f"not run: the episode's {opts.max_tool_calls} tool calls are used up; call {SUBMIT}"
        return None

    async def _run_tool(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        ws = self.ep.ws
        before = ws.proposals.digest if ws.proposals is not None else None
        try:
            output = await self.ep.call(name, {**self.defaults.get(name, {}), **args})
        except (ToolError, VLMError) as exc:
            return json.dumps({"error": shorten(str(exc), MAX_ERROR_CHARS)}), None
        if ws.proposals is not None and before is not None and ws.proposals.digest != before:
            self.last_overlay = ()  # new candidates (the workspace dropped the old rankings)
        if isinstance(output, Ranking):
            return self._ranked(output)
        if name == self.prompt_tool and isinstance(output, Proposals):
            added = added_indices(self.ep, output)
            log_prompt(self.ep, name, args, added)
            return json.dumps(prompt_payload(output, added, ws, self.cfg.ranker)), None
        return self._payload(output), None

    def _ranked(self, ranking: Ranking) -> tuple[str, dict[str, Any] | None]:
        ep = self.ep
        ep.ws.use_query(ranking.query)  # the agent's own wording becomes the current query
        self.rank_calls += 1
        ep.iterations = max(0, self.rank_calls - 1)  # re-rankings, as in the loop controller
        if ep.guard(ranking):
            raise _Stop(StopReason.GUARD)
        return self._payload(ranking), self._overlay(ranking)

    def _submit(self, args: dict[str, Any]) -> str:
        ep = self.ep
        try:
            params = submit_params(self.cfg.answers_empty).model_validate(args)
        except ValidationError as exc:
            return self._reject(SUBMIT, args, format_validation_error(SUBMIT, exc))
        if params.index is None:  # no_match (the only answer without an index)
            ep.log.info("submit", step=ep.step, no_match=True, reason=params.reason)
            raise _Stop(StopReason.NOT_FOUND, "agent: the VLM answered that nothing matches the expression")
        ranking, props = ep.ws.ranking, ep.ws.proposals
        if ranking is None or props is None or len(ranking) != len(props):
            return self._reject(
                SUBMIT,
                args,
                f"nothing ranked yet: call {self.cfg.ranker} first, "
                "then submit one of the indices it reports",
            )
        if params.index >= len(ranking):
            return self._reject(
                SUBMIT,
                args,
                f"index {params.index} is out of range: there are "
                f"{len(ranking)} candidates (0..{len(ranking) - 1})",
            )
        chosen = SubmittedRanking.of(ranking, params.index)
        ep.ws.submit(chosen)
        ep.log.info(
            "submit",
            step=ep.step,
            index=params.index,
            reason=params.reason,
            prob=round(chosen.conf, 4),
            ranker_top=ranking.top,
        )
        raise _Stop(StopReason.AGENT_SUBMIT)

    # -- the loop ----------------------------------------------------------------------

    def _check_limits(self) -> None:
        """Before each VLM turn: turn limit, then the episode's tokens and USD (the agent's own
        turns plus VLM-backed tools such as the VLM refiner)."""
        if self.ep.turns >= self.opts.max_turns:
            raise _Stop(StopReason.MAX_ITER, f"agent stopped: max_turns={self.opts.max_turns} reached")
        spent = self.ep.budget_spent(self.opts.budget_tokens, self.opts.budget_usd)
        if spent is not None:
            raise _Stop(StopReason.BUDGET, f"agent stopped: {spent}")

    async def _turn(self) -> tuple[VLMReply, tuple[ToolCall, ...], str]:
        """One VLM turn: the reply, its calls and their style (``native``, ``text``, ``none``)."""
        ep = self.ep
        try:
            reply = await ep.ask_vlm(self.client, self.messages, **self.style.request())
        except VLMError as exc:
            raise _Stop(StopReason.FALLBACK, f"agent fell back: {exc}", fallback_kind(exc)) from None
        calls, style = self.style.read(reply)
        ep.log.info(
            "turn",
            turn=ep.turns,
            step=ep.step,
            finish_reason=reply.finish_reason,
            tool_calls=[c.short_name for c in calls],
            tool_call_style=style,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            content=(reply.content or "")[:200],
        )
        return reply, calls, style

    async def _warm_start(self) -> None:
        """Propose and rank before any VLM turn: a sure ranking ends the episode for free;
        otherwise the model starts from the ranked candidates (payload and overlay)."""
        cfg = self.cfg
        ranking = await propose_and_rank(self.ep)
        self.rank_calls += 1
        if self.ep.guard(ranking):
            raise _Stop(StopReason.GUARD)
        self.messages.append(
            {
                "role": "user",
                "content": f"{cfg.proposer} and {cfg.ranker} already ran on this image and "
                f"expression: {self._payload(ranking)}",
            }
        )
        overlay = self._overlay(ranking)
        if overlay is not None:
            self._add_overlay(overlay)

    async def _answer(self, calls: tuple[ToolCall, ...], style: str) -> None:
        """Run the reply's tool calls and append their answers (nudge once when there are none)."""
        if not calls:
            if self.nudged:
                note = "agent fell back: no tool call after a nudge"
                raise _Stop(StopReason.FALLBACK, note, "no_tool_call")
            self.nudged = True
            self.messages.append({"role": "user", "content": self.style.nudge(NUDGE)})
            return
        overlay, refused, contents = None, 0, []
        for index, call in enumerate(calls):
            refusal = self._refusal(index, call)
            if refusal is None:
                content, image = await self._execute(call)
            else:  # every call of the reply needs an answer; this one is a short error
                content, image, refused = json.dumps({"error": refusal}), None, refused + 1
            contents.append(content)
            overlay = image or overlay
        self.messages.extend(self.style.answers(style, calls, contents))
        if refused:
            self.ep.log.info("tool_call_limit", step=self.ep.step, turn=self.ep.turns, refused=refused)
        if overlay is not None:
            self._add_overlay(overlay)

    async def _loop(self) -> None:
        self._opening()
        if self.opts.warm_start:
            await self._warm_start()
        while True:
            self._check_limits()
            reply, calls, style = await self._turn()
            self.messages.append(reply.assistant_message())
            await self._answer(calls, style)

    async def _ensure_ranking(self) -> None:
        """Propose and rank directly when the conversation ended without a usable ranking."""
        if await ensure_ranking(self.ep):
            self.ep.notes.append("no usable ranking from the agent: proposed and ranked directly")

    async def _converse(self) -> None:
        """The conversation until a stop; then a usable ranking when it ended without one."""
        ep = self.ep
        try:
            await self._loop()
        except _Stop as stop:
            if stop.reason == StopReason.FALLBACK:
                ep.fall_back(stop.note or "agent fell back", stop.kind or "vlm_error")
            else:
                ep.stop_reason = stop.reason
                if stop.note:
                    ep.notes.append(stop.note)
        if ep.stop_reason in (StopReason.FALLBACK, StopReason.MAX_ITER, StopReason.BUDGET):
            await self._ensure_ranking()

    async def run(self) -> None:
        ep = self.ep
        try:
            await self._converse()
        except Exception as exc:
            # The session records the error; the trace still says how the agent ended.
            failed_on_fallback = ep.stop_reason == StopReason.FALLBACK
            ep.log.info(
                "agent_stop",
                step=ep.step,
                reason=StopReason.FALLBACK if failed_on_fallback else StopReason.ERROR,
                turns=ep.turns,
                detail=f"{type(exc).__name__}: {exc}",
            )
            raise
        total = ep.costs.total()
        ep.log.info(
            "agent_stop",
            step=ep.step,
            reason=ep.stop_reason,
            turns=ep.turns,
            tokens=total.tokens_in + total.tokens_out,
            usd=round(total.usd, 8),
            detail=ep.notes[-1] if ep.notes else None,
            tool_call_styles=dict(self.style.styles),
        )


def vlm_client(ep: Episode) -> Any:
    """The session's VLM client.

    Raises:
        ConfigError: no VLM is configured.
    """
    client = ep.registry.settings.vlm
    if client is None:
        raise ConfigError(no_vlm_message(ep.config.controller))
    return client


async def run_agent(ep: Episode) -> None:
    """The VLM drives propose / rank / refine / submit; guards, limits and fallbacks hold."""
    await AgentRun(ep, vlm_client(ep)).run()


AGENT = ControllerSpec(
    name="agent",
    run=run_agent,
    description="the VLM drives the tools through function calling (propose, rank, refine, "
    "draw a box, submit); the guard, turn and budget limits still hold",
    vlm="required",
    prompt_tool="optional",
    refines=True,
    Options=AgentOptions,
    more_tools=other_tools,
)

__all__ = ["AGENT", "AgentRun", "offered_tools", "other_tools", "run_agent", "vlm_client"]
