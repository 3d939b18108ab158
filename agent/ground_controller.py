"""The ``ground`` controller: when the ranker is unsure, the VLM points and the prompt tool draws.

Propose and rank as the loop does; a ranking that passes the guard ends the episode. When
it does not (and ``max_iter`` >= 1), one chat call shows the VLM the image and the
expression and asks for the object's box (and, optionally, points on it) as JSON, in the
coordinates of the picture it was shown (the ``vlm_coords`` option). The proposer's
prompt tool (``sam_prompt``, ``region_prompt``) draws it; the drawn mask joins the
candidates and the ranker scores them all. The drawn mask is confirmed, and chosen with stop
reason ``grounded``, when it agrees with the VLM's box (its tight box overlaps the VLM's
with IoU >= :data:`tools.prompting.AGREEMENT`: the drawing is what the VLM pointed at);
otherwise the ranker's choice stands and a note says why.

When the VLM fails, or answers nothing usable, or a box the prompt tool refuses, the loop's
answer (the best ranking so far) stands: stop reason ``fallback`` and a note. The trace has
a ``ground`` event (the VLM's answer) and a ``prompt`` event (the box in the VLM's view and
in the original image); the call is booked under ``vlm`` like the agent's turns.

Its options (:class:`agent.controller_options.GroundOptions`): the episode's VLM budget
(``budget_tokens``, ``budget_usd``: a spent budget stops before asking) and ``vlm_coords``.
"""

from __future__ import annotations

import re
from typing import Any

from agent.agent_controller import vlm_client
from agent.controller_options import GroundOptions
from agent.controllers import ControllerSpec
from agent.episode import Episode, StopReason, fallback_kind
from agent.loop_controller import propose_and_rank
from agent.prompt_tools import added_indices, log_prompt, require_prompt_tool, show_image
from agent.submit import SubmittedRanking
from tools.coords import View
from tools.errors import ToolError, VLMError
from tools.json_reply import json_values, reply_body
from tools.prompting import AGREEMENT, PromptParams, resolve_prompt
from tools.types import Proposals

GROUND_SYSTEM = """\
You locate objects in images for a segmentation system. Given a referring expression, find \
the single object it describes. Answer with JSON only: \
{{"box": [x0, y0, x1, y1], "points": [[x, y]]}} where box is the object's top-left and \
bottom-right corners and points (optional) are one or two points well inside the object, \
all in {coords}. If nothing in the image matches, answer {{"box": null}}."""
BOX_KEYS = ("box", "bbox", "bbox_2d")
POINT_KEYS = ("points", "point", "point_2d")
MAX_ANSWER_TOKENS = 200
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_CORNERS = re.compile(rf"\({_NUMBER},{_NUMBER}\)\s*,?\s*\({_NUMBER},{_NUMBER}\)")


class _Fallback(Exception):
    """Ends grounding with the best ranking so far and a note; ``kind`` classes the failure
    for the fallback tallies (see :func:`agent.episode.fallback_kind`)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def ground_messages(expression: str, image_url: str, view: View) -> list[dict[str, Any]]:
    """The one request: system prompt (how to answer, which coordinates), image, expression."""
    w, h = view.frame.wh
    text = f'Referring expression: "{expression}"\nImage: {w}x{h} pixels.'
    return [
        {"role": "system", "content": GROUND_SYSTEM.format(coords=view.describe())},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": text},
            ],
        },
    ]


def _first(value: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((value[k] for k in keys if k in value), None)


def parse_ground_answer(text: str | None) -> dict[str, Any] | None:
    """The prompt tool's arguments from the VLM's answer; ``None`` when it found no object.

    Takes ``{"box": [...], "points": [[x, y]], "labels": [...]}``, Qwen2.5-VL's
    ``[{"bbox_2d": [...], "label": ...}]`` and ``point_2d`` forms, a bare ``[x0, y0, x1, y1]``
    (fenced or inside prose), and Qwen2-VL's ``(x0,y0),(x1,y1)``. The numbers are checked by
    the prompt tool.

    Raises:
        ToolError: the answer holds neither a box nor points.
    """
    for value in json_values(reply_body(text)):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0]  # a list of detections: the first
        if isinstance(value, list) and len(value) == 4:
            return {"box": value}
        if not isinstance(value, dict):
            continue
        box, points = _first(value, BOX_KEYS), _first(value, POINT_KEYS)
        if isinstance(points, list) and len(points) == 2 and not isinstance(points[0], list):
            points = [points]  # one point as [x, y]
        if box is None and not points:
            return None
        args: dict[str, Any] = {"box": box} if box is not None else {}
        if points:
            args["points"] = points
            if value.get("labels") is not None:
                args["labels"] = value["labels"]
        return args
    corners = _CORNERS.search(text or "")
    if corners:
        return {"box": [float(v) for v in corners.groups()]}
    raise ToolError(f"the VLM's answer has no box: {(text or '')[:120]!r}")


async def _ask(ep: Episode) -> dict[str, Any] | None:
    """One chat call for the object's box; its cost is booked and the answer traced.

    Raises:
        _Fallback: the VLM failed or its answer has no box.
    """
    client = vlm_client(ep)
    units = ep.options_as(GroundOptions).vlm_coords
    messages = ground_messages(ep.ws.expression, show_image(ep, units), ep.ws.shown_view())
    try:
        reply = await ep.ask_vlm(client, messages, temperature=0.0, max_tokens=MAX_ANSWER_TOKENS)
    except VLMError as exc:
        raise _Fallback(f"the VLM failed: {exc}", fallback_kind(exc)) from None
    view = ep.ws.shown_view()
    try:
        args = parse_ground_answer(reply.content)
    except ToolError as exc:
        ep.log.info("ground", step=ep.step, answer=(reply.content or "")[:200], error=str(exc))
        raise _Fallback(str(exc), "tool_error") from None
    ep.log.info(
        "ground",
        step=ep.step,
        answer=(reply.content or "")[:200],
        units=view.units,
        view_size=list(view.frame.wh),
        found=args is not None,
    )
    return args


async def _draw_and_choose(ep: Episode, tool: str, args: dict[str, Any]) -> None:
    """Draw the VLM's prompt, rank all candidates, confirm the drawn mask or keep the ranker's."""
    cfg, ws = ep.config, ep.ws
    try:
        output: Proposals = await ep.call(tool, args)
    except ToolError as exc:
        raise _Fallback(f"{tool} refused the VLM's answer: {exc}", "tool_error") from None
    ep.iterations = 1
    added = added_indices(ep, output)
    log_prompt(ep, tool, args, added)
    ranking = await ep.call(cfg.ranker, dict(cfg.rank_args))
    assert ws.proposals is not None
    prompt = resolve_prompt(ws, PromptParams.model_validate(args))
    scores = {i: prompt.agreement(ws.proposals.masks[i]) for i in added if i >= 0}
    best = max(scores, key=lambda i: scores[i], default=-1)
    agreement = scores.get(best, 0.0)
    confirmed = agreement >= AGREEMENT
    ep.log.info(
        "ground_choice",
        step=ep.step,
        drawn=best,
        agreement=round(agreement, 4),
        confirmed=confirmed,
        ranker_top=ranking.top,
        prob=round(float(ranking.probs[best]), 4) if best >= 0 else None,
    )
    if confirmed:
        ws.submit(SubmittedRanking.of(ranking, best, by="ground"))
        ep.stop_reason = StopReason.GROUNDED
        return
    ep.notes.append(
        f"ground: the drawn mask does not match the VLM's box (agreement {agreement:.2f} < "
        f"{AGREEMENT}); kept the ranker's choice"
    )
    ep.stop_reason = StopReason.GUARD if ep.guard(ranking) else StopReason.MAX_ITER


async def run_ground(ep: Episode) -> None:
    """Propose, rank; when unsure, ground the object with the VLM and draw it (see module)."""
    cfg, opts = ep.config, ep.options_as(GroundOptions)
    tool = require_prompt_tool(ep.registry, cfg.proposer, cfg.controller)
    ranking = await propose_and_rank(ep)
    if ep.guard(ranking):
        ep.stop_reason = StopReason.GUARD
        return
    spent = ep.budget_spent(opts.budget_tokens, opts.budget_usd)
    if cfg.max_iter < 1 or spent is not None:
        if spent is not None:
            ep.notes.append(f"ground stopped: {spent}")
        ep.stop_reason = StopReason.BUDGET if spent is not None else StopReason.MAX_ITER
        return
    try:
        args = await _ask(ep)
        if args is None:
            ep.notes.append("ground: the VLM found no such object; kept the ranker's choice")
            ep.stop_reason = StopReason.NOT_FOUND
            return
        await _draw_and_choose(ep, tool, args)
    except _Fallback as exc:
        ep.fall_back(f"ground fell back to the loop's answer: {exc}", exc.kind)


GROUND = ControllerSpec(
    name="ground",
    run=run_ground,
    description="when the ranking is unsure, one VLM call gives the object's box and the "
    "proposer's prompt tool draws it",
    vlm="required",
    prompt_tool="required",
    Options=GroundOptions,
)
