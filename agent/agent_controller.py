"""The ``agent`` controller: the VLM drives the tools through function calling.

The model sees the expression and the image, and the episode's proposer, ranker and refiner
(plus every registry tool of role ``other``) as OpenAI function schemas generated from the
tools' pydantic parameters, and a ``submit`` function. Every tool call goes through
``Episode.call`` (cache, trace, cost), and each answer is a compact JSON tool message.

The guards still hold: a ranking that passes ``tau_conf``/``tau_gap`` ends the episode at
once, with no further VLM turn (that is what makes the agent cheap when CLIP is sure).
``max_turns`` and the token/USD budget end it with ``max_iter``. Unknown tools, bad JSON,
schema-invalid arguments and ``ToolError`` go back to the model as errors. When the VLM
fails (``VLMError``) or answers twice without a tool call, the episode falls back to the
best CLIP candidate, proposing and ranking directly if needed. Every path records a stop
reason; the chosen candidate is read from the workspace's rankings afterwards.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter
from pydantic import Field, ValidationError

from agent.invoke import format_validation_error
from agent.vlm import ToolCall, image_data_url
from tools.base import StrictParams
from tools.errors import ConfigError, ToolError, VLMError
from tools.types import Proposals, Ranking, Refinement

if TYPE_CHECKING:
    from agent.session import Episode

SUBMIT = "submit"
IMAGE_SIDE = 768  # longest side of the image the model sees (boxes are in its pixels)
OVERLAY_SIDE = 448  # candidate overlays are smaller: they only need to show outlines
OVERLAY_TOP_K = 4
RESULT_TOP_K = 5
JPEG_QUALITY = 85
OUTLINE_COLORS = ((255, 40, 40), (40, 220, 40), (40, 120, 255), (255, 200, 0), (230, 60, 230))
NUDGE = (
    "Call a tool or submit: reply with a function call (for example the ranker, or "
    f"{SUBMIT} with the index of the candidate that matches the expression)."
)

SYSTEM_PROMPT = """\
You segment the single object that a referring expression describes in an image.
You cannot draw masks yourself; you work through tools:
- {proposer}: proposes candidate masks for the whole image. Call it first.
- {ranker}: scores every candidate against the current query and returns the top \
candidates (index, probability, box), with conf (top-1 probability) and gap (top-1 minus \
top-2). A picture with the top candidates outlined and numbered by index follows.
- {refiner}: rewrites the query (head noun, colour, position) when the ranking is unsure; \
rank again afterwards.{others}
- {submit}: your final answer, the index of the candidate that matches the expression.
When the ranker is confident enough the system stops on its own. Otherwise look at the \
outlined candidates: submit the right index if you see it, or refine and rank again. \
Boxes are [x0, y0, x1, y1] in pixels of the image you were shown. Always answer with a \
function call; be brief."""


class SubmitParams(StrictParams):
    """Arguments of the ``submit`` function."""

    index: int = Field(ge=0, description="Index of the chosen candidate, as the ranker reported it.")
    reason: str | None = Field(default=None, max_length=500, description="One short sentence why.")


SUBMIT_DESCRIPTION = (
    "Finish: choose the candidate mask that matches the referring expression, by the index "
    "the ranker reported. Ends the episode."
)


def submit_schema() -> dict[str, Any]:
    """The OpenAI function schema of ``submit``."""
    params = SubmitParams.model_json_schema()
    params.pop("title", None)
    return {
        "type": "function",
        "function": {"name": SUBMIT, "description": SUBMIT_DESCRIPTION, "parameters": params},
    }


class SubmittedRanking(Ranking):
    """A ranking with the agent's choice on top.

    ``probs`` and ``scores`` stay the ranker's; ``conf`` is the ranker's probability of the
    chosen candidate and ``gap`` its margin over the best other one (negative when the agent
    overrode the ranker), so results stay honest about what CLIP thought.
    """

    chosen: int = -1

    @classmethod
    def of(cls, base: Ranking, chosen: int) -> SubmittedRanking:
        out = cls(
            base.scores,
            base.probs,
            base.query,
            base.temperature,
            base.proposals_digest,
            source=f"{SUBMIT}:{base.source}",
        )
        out.chosen = chosen
        return out

    @property
    def order(self) -> np.ndarray:
        rest = [int(i) for i in np.argsort(-self.probs, kind="stable") if int(i) != self.chosen]
        return np.array([self.chosen, *rest], dtype=np.int64)

    @property
    def conf(self) -> float:
        return float(self.probs[self.chosen])

    @property
    def gap(self) -> float:
        others = np.delete(self.probs, self.chosen)
        return float(self.probs[self.chosen] - (others.max() if others.size else 0.0))


class _Stop(Exception):
    """Raised inside the loop to end the episode with ``reason`` (and a note for the result)."""

    def __init__(self, reason: str, note: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.note = note


def downscale(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """``pixels`` with the longest side at most ``max_side`` (unchanged when smaller)."""
    img = PILImage.fromarray(pixels).convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, PILImage.Resampling.BILINEAR)
    return np.asarray(img)


def _encode_jpeg(pixels: np.ndarray, max_side: int) -> tuple[str, tuple[int, int]]:
    """A JPEG data URL of ``pixels`` downscaled to ``max_side``; returns it and ``(W, H)``."""
    small = downscale(pixels, max_side)
    # Scaled here, so the size the boxes refer to is known exactly.
    url = image_data_url(small, max_side=max(small.shape[:2]), quality=JPEG_QUALITY)
    return url, (int(small.shape[1]), int(small.shape[0]))


def overlay_pixels(pixels: np.ndarray, masks: np.ndarray, indices: list[int], max_side: int) -> np.ndarray:
    """The image, downscaled, with each mask in ``indices`` outlined and labelled by its index."""
    out = downscale(pixels, max_side).copy()
    size = (int(out.shape[1]), int(out.shape[0]))
    labels: list[tuple[int, tuple[int, int], tuple[int, int, int]]] = []
    for k, idx in enumerate(indices):
        color = OUTLINE_COLORS[k % len(OUTLINE_COLORS)]
        m = PILImage.fromarray(masks[idx].astype(np.uint8) * 255).resize(size, PILImage.Resampling.NEAREST)
        edge = np.asarray(m.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))) > 0
        out[edge] = color
        ys, xs = np.nonzero(np.asarray(m))
        if ys.size:
            labels.append((idx, (int(xs.min()), int(ys.min())), color))
    canvas = PILImage.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    for idx, (x, y), color in labels:
        text = str(idx)
        x0, y0, x1, y1 = draw.textbbox((x, y), text)
        draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], fill=(0, 0, 0))
        draw.text((x, y), text, fill=color)
    return np.asarray(canvas)


class AgentRun:
    """One agent episode: the conversation, the tools offered and the stopping rules."""

    def __init__(self, ep: Episode, client: Any):
        self.ep = ep
        self.client = client
        self.cfg = ep.config
        registry = ep.session.registry
        core = list(dict.fromkeys([self.cfg.proposer, self.cfg.ranker, self.cfg.refiner]))
        names = list(core)
        skipped: list[str] = []
        for name in registry.names():
            if name in names or name == SUBMIT:
                continue
            try:
                if registry.tool_class(name).role == "other":
                    names.append(name)
            except Exception:  # a broken optional plugin must not cost the episode
                skipped.append(name)
        self.tool_names = names
        self.extra_tools = names[len(core) :]
        self.schemas = [registry.tool_class(n).function_schema() for n in names] + [submit_schema()]
        self.defaults = {
            self.cfg.proposer: dict(self.cfg.propose_args),
            self.cfg.ranker: dict(self.cfg.rank_args),
        }
        self.messages: list[dict[str, Any]] = []
        self.nudged = False
        self.rank_calls = 0
        self.overlay_at: int | None = None  # message index of the latest overlay
        self.last_overlay: tuple[int, ...] = ()
        ep.log.info("agent_tools", step=ep.step, tools=[*names, SUBMIT], skipped=skipped)
        self.image_url, self.image_size = _encode_jpeg(ep.ws.image.pixels, IMAGE_SIDE)

    # -- conversation ------------------------------------------------------------------

    def _opening(self) -> None:
        others = "".join(
            f"\n- {n}: {self.ep.session.registry.tool_class(n).description}" for n in self.extra_tools
        )
        system = SYSTEM_PROMPT.format(
            proposer=self.cfg.proposer,
            ranker=self.cfg.ranker,
            refiner=self.cfg.refiner,
            submit=SUBMIT,
            others=others,
        )
        w, h = self.image_size
        self.messages = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": f'Referring expression: "{self.ep.ws.expression}"\nImage: {w}x{h} pixels.',
                    },
                    {"type": "image_url", "image_url": {"url": self.image_url}},
                ],
            },
        ]

    def _scale(self) -> float:
        return self.image_size[0] / self.ep.ws.image.width

    def _payload(self, name: str, output: Any) -> dict[str, Any]:
        """The compact JSON the model gets back for one tool output."""
        if isinstance(output, Proposals):
            if len(output) == 0:
                return {"n_proposals": 0, "next": "no candidate masks: try other proposer arguments"}
            return {"n_proposals": len(output), "next": f"call {self.cfg.ranker}"}
        if isinstance(output, Ranking):
            s = self._scale()
            props = self.ep.ws.proposals
            top = []
            for i in output.order[:RESULT_TOP_K]:
                entry: dict[str, Any] = {"index": int(i), "prob": round(float(output.probs[i]), 4)}
                if props is not None and int(i) < len(props):
                    entry["box"] = [round(float(v) * s) for v in props.boxes[int(i)]]
                top.append(entry)
            return {
                "query": output.query,
                "n": len(output),
                "top": top,
                "conf": round(output.conf, 4),
                "gap": round(output.gap, 4),
                "guard": "not passed: not sure enough to stop",
            }
        if isinstance(output, Refinement):
            return {
                "query": output.query,
                "rationale": output.rationale[:200],
                "next": f"call {self.cfg.ranker}",
            }
        summary = getattr(output, "summary", None)
        return summary() if callable(summary) else {"result": str(output)[:500]}

    def _overlay(self, ranking: Ranking) -> dict[str, Any] | None:
        """A small user image message outlining the top candidates (None when it adds nothing)."""
        props = self.ep.ws.proposals
        if props is None or len(ranking) < 2 or len(ranking) != len(props):
            return None
        top = tuple(int(i) for i in ranking.order[:OVERLAY_TOP_K])
        if top == self.last_overlay:
            return None  # the model has seen exactly these outlines already
        self.last_overlay = top
        pixels = overlay_pixels(self.ep.ws.image.pixels, props.masks, list(top), OVERLAY_SIDE)
        url, _ = _encode_jpeg(pixels, OVERLAY_SIDE)
        text = "Top candidates outlined, labelled by index: " + ", ".join(map(str, top))
        return {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
        }

    def _add_overlay(self, message: dict[str, Any]) -> None:
        if self.overlay_at is not None:  # only the latest overlay is worth its image tokens
            self.messages[self.overlay_at] = {"role": "user", "content": "(older candidate overlay removed)"}
        self.overlay_at = len(self.messages)
        self.messages.append(message)

    # -- tools -------------------------------------------------------------------------

    def _reject(self, name: str, args: Any, message: str) -> str:
        self.ep.log.info(
            "tool_call",
            tool=name,
            step=self.ep.step,
            args=args,
            seconds=0.0,
            cache_hit=False,
            error=message,
            rejected=True,
        )
        return json.dumps({"error": message})

    async def _execute(self, call: ToolCall) -> tuple[str, dict[str, Any] | None]:
        """Run one requested call; returns the tool message content and an overlay (or None).

        Raises:
            _Stop: a submit or a ranking that passes the guard ends the episode.
        """
        ep, name, raw = self.ep, call.name, call.arguments
        if name != SUBMIT and name not in self.tool_names:
            known = ", ".join([*self.tool_names, SUBMIT])
            return self._reject(name, raw, f"unknown tool {name!r}; available: {known}"), None
        try:
            args = call.parse_arguments()
        except ValueError as exc:
            return self._reject(name, raw, str(exc)), None
        if name == SUBMIT:
            return self._submit(args), None
        before = ep.ws.proposals.digest if ep.ws.proposals is not None else None
        try:
            output = await ep.call(name, {**self.defaults.get(name, {}), **args})
        except (ToolError, VLMError) as exc:
            return json.dumps({"error": str(exc)}), None
        if isinstance(output, Proposals) and before is not None and output.digest != before:
            # New candidates: rankings of the old ones no longer index them.
            ep.ws.ranking = ep.ws.best_ranking = None
            self.last_overlay = ()
        if isinstance(output, Ranking):
            if output.query and output.query != ep.ws.query:
                # The agent's own wording becomes the current query (and the result's history).
                ep.ws.query = output.query
                ep.ws.history.append(output.query)
            self.rank_calls += 1
            ep.iterations = max(0, self.rank_calls - 1)  # re-rankings, as in the loop controller
            if ep.guard(output):
                raise _Stop("guard")
            return json.dumps(self._payload(name, output)), self._overlay(output)
        return json.dumps(self._payload(name, output)), None

    def _submit(self, args: dict[str, Any]) -> str:
        ep = self.ep
        try:
            params = SubmitParams.model_validate(args)
        except ValidationError as exc:
            return self._reject(SUBMIT, args, format_validation_error(SUBMIT, exc))
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
        ep.ws.ranking = ep.ws.best_ranking = chosen
        ep.log.info(
            "submit",
            step=ep.step,
            index=params.index,
            reason=params.reason,
            prob=round(chosen.conf, 4),
            ranker_top=ranking.top,
        )
        raise _Stop("agent_submit")

    # -- the loop ----------------------------------------------------------------------

    def _check_limits(self) -> None:
        """Before each VLM turn: turn limit, then the episode's tokens and USD (the agent's own
        turns plus VLM-backed tools such as the VLM refiner)."""
        cfg, total = self.cfg, self.ep.costs.total()
        if self.ep.turns >= cfg.max_turns:
            raise _Stop("max_iter", f"agent stopped: max_turns={cfg.max_turns} reached")
        tokens = total.tokens_in + total.tokens_out
        if tokens >= cfg.budget_tokens:
            raise _Stop("max_iter", f"agent stopped: token budget spent ({tokens} >= {cfg.budget_tokens})")
        if total.usd >= cfg.budget_usd:
            raise _Stop("max_iter", f"agent stopped: USD budget spent ({total.usd:.6f} >= {cfg.budget_usd})")

    async def _turn(self) -> Any:
        ep = self.ep
        start = time.perf_counter()
        try:
            reply = await self.client.complete(self.messages, tools=self.schemas, tool_choice="auto")
        except VLMError as exc:
            ep.costs.record("vlm", seconds=time.perf_counter() - start, error=True)
            raise _Stop("fallback", f"agent fell back: {exc}") from None
        ep.turns += 1
        ep.costs.record(
            "vlm",
            seconds=time.perf_counter() - start,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            usd=reply.usd,
        )
        ep.log.info(
            "turn",
            turn=ep.turns,
            step=ep.step,
            finish_reason=reply.finish_reason,
            tool_calls=[c.name for c in reply.tool_calls],
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            content=(reply.content or "")[:200],
        )
        return reply

    async def _warm_start(self) -> None:
        """Propose and rank before any VLM turn: a sure ranking ends the episode for free;
        otherwise the model starts from the ranked candidates (payload and overlay)."""
        ep, cfg = self.ep, self.cfg
        await ep.call(cfg.proposer, dict(cfg.propose_args))
        ep.ws.require_proposals()
        ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))
        self.rank_calls += 1
        if ep.guard(ranking):
            raise _Stop("guard")
        payload = json.dumps(self._payload(cfg.ranker, ranking))
        self.messages.append(
            {
                "role": "user",
                "content": f"{cfg.proposer} and {cfg.ranker} already ran on this image and "
                f"expression: {payload}",
            }
        )
        overlay = self._overlay(ranking)
        if overlay is not None:
            self._add_overlay(overlay)

    async def _loop(self) -> None:
        self._opening()
        if self.cfg.agent_warm_start:
            await self._warm_start()
        while True:
            self._check_limits()
            reply = await self._turn()
            self.messages.append(reply.assistant_message())
            if not reply.tool_calls:
                if self.nudged:
                    raise _Stop("fallback", "agent fell back: no tool call after a nudge")
                self.nudged = True
                self.messages.append({"role": "user", "content": NUDGE})
                continue
            overlay = None
            for call in reply.tool_calls:
                content, image = await self._execute(call)
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
                overlay = image or overlay
            if overlay is not None:
                self._add_overlay(overlay)

    async def _ensure_ranking(self) -> None:
        """Propose and rank directly when the conversation ended without a usable ranking."""
        ws, cfg = self.ep.ws, self.cfg
        ranking, props = ws.ranking, ws.proposals
        if ranking is not None and props is not None and len(ranking) == len(props) > 0:
            return
        if ws.proposals is None:
            await self.ep.call(cfg.proposer, dict(cfg.propose_args))
        ws.require_proposals()
        await self.ep.call(cfg.ranker, dict(cfg.rank_args))
        self.ep.notes.append("no usable ranking from the agent: proposed and ranked directly")

    async def run(self) -> None:
        ep = self.ep
        try:
            try:
                await self._loop()
            except _Stop as stop:
                ep.stop_reason = stop.reason
                if stop.note:
                    ep.notes.append(stop.note)
            if ep.stop_reason in ("fallback", "max_iter"):
                await self._ensure_ranking()
        except Exception as exc:
            # The session records the error; the trace still says how the agent ended.
            ep.log.info(
                "agent_stop",
                step=ep.step,
                reason="fallback" if ep.stop_reason == "fallback" else "error",
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
        )


def vlm_client(ep: Episode) -> Any:
    """The session's VLM client.

    Raises:
        ConfigError: no VLM is configured.
    """
    client = ep.session.registry.settings.vlm
    if client is None:
        raise ConfigError(
            "--controller agent needs a VLM: set SILICONFLOW_API_KEY (or REFSEG_VLM_API_KEY) or "
            "pass --vlm-base-url for a local OpenAI-compatible server; or use --controller loop"
        )
    return client


async def run_agent(ep: Episode) -> None:
    """The VLM drives propose / rank / refine / submit; guards, limits and fallbacks hold."""
    await AgentRun(ep, vlm_client(ep)).run()


__all__ = [
    "SUBMIT",
    "AgentRun",
    "SubmitParams",
    "SubmittedRanking",
    "overlay_pixels",
    "run_agent",
    "submit_schema",
    "vlm_client",
]
