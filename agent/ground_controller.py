"""The ``ground`` controller: when the ranker is unsure, the VLM points and the prompt tool draws.

Propose and rank as the loop does; a ranking that passes the guard ends the episode. When
it does not (and ``max_iter`` >= 1), one chat call shows the VLM the image and the
expression and asks for the object's box as JSON, in the reply format and coordinate
convention of the VLM's profile (:class:`agent.vlm_profile.VLMProfile`: ``{"box": ...}`` with
optional points, Qwen's ``bbox_2d``, Gemini's ``box_2d``, InternVL's ``<box>``; pixels of the
picture it was shown or normalised), as schema-shaped JSON with ``--vlm-json-schema``. The proposer's
prompt tool (``sam_prompt``, ``region_prompt``) draws it; the drawn mask joins the
candidates and the ranker scores them all. The drawn mask is confirmed, and chosen with stop
reason ``grounded``, when it agrees with the VLM's box (its tight box overlaps the VLM's
with IoU >= :data:`tools.prompting.AGREEMENT`: the drawing is what the VLM pointed at);
otherwise the ranker's choice stands and a note says why.

When the VLM answers that no such object is there, the episode ends ``not_found``: the
ranker's choice stands, or, with ``not_found`` ``empty`` (data sets with no-target
expressions), the answer is an empty mask. When the VLM fails, or answers nothing usable,
or a box the prompt tool refuses, the loop's answer (the best ranking so far) stands: stop
reason ``fallback`` and a note. The trace has a ``ground`` event (the VLM's answer) and a
``prompt`` event (the box in the VLM's view and in the original image); the call is booked
under ``vlm`` like the agent's turns.

Its options (:class:`agent.controller_options.GroundOptions`): the episode's VLM budget
(``budget_tokens``, ``budget_usd``: a spent budget stops before asking).
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
from agent.vlm_profile import VLMProfile, profile_of
from tools.coords import View
from tools.errors import ToolError, VLMError
from tools.json_reply import json_values, reply_body
from tools.prompting import AGREEMENT, PromptParams, resolve_prompt
from tools.types import Proposals

GROUND_INTRO = (
    "You locate objects in images for a segmentation system. Given a referring expression, find "
    "the single object it describes. "
)
# What the ground prompt asks for, by VLMProfile.reply_format (every form is parsed).
GROUND_FORMATS = {
    "box": 'Answer with JSON only: {{"box": {box}, "points": [{point}]}} where box is the '
    "object's top-left and bottom-right corners and points (optional) are one or two points well "
    'inside the object, all in {coords}. If nothing in the image matches, answer {{"box": null}}.',
    "bbox_2d": 'Answer with JSON only: [{{"bbox_2d": {box}, "label": "<the object>"}}] where '
    "bbox_2d is the object's top-left and bottom-right corners in {coords}. If nothing in the "
    "image matches, answer [].",
    "box_2d": 'Answer with JSON only: [{{"box_2d": {box}, "label": "<the object>"}}] where box_2d '
    "is the object's bounding box in {coords}. If nothing in the image matches, answer [].",
    "ref_box": "Answer as <ref>the object</ref><box>[{box}]</box> where the box is the object's "
    "top-left and bottom-right corners in {coords}. If nothing in the image matches, answer "
    "<ref>none</ref><box>[]</box>.",
}
# With --vlm-json-schema the answer is one object (structured outputs take an object root).
SCHEMA_KEY = {"box": "box", "bbox_2d": "bbox_2d", "box_2d": "box_2d", "ref_box": "box"}
SCHEMA_FORMAT = (
    'Answer with JSON only: {{"{key}": {box}}}, the object\'s bounding box in {coords}; if nothing '
    'in the image matches, answer {{"{key}": null}}.'
)
BOX_KEYS = ("box", "bbox", "bbox_2d", "box_2d")
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


def ground_system(view: View, profile: VLMProfile) -> str:
    """The system prompt: what to find, and the reply format and coordinates ``profile`` asks for."""
    fields = {"box": view.box_form, "point": view.point_form, "coords": view.describe()}
    if profile.json_schema:
        return GROUND_INTRO + SCHEMA_FORMAT.format(key=SCHEMA_KEY[profile.reply_format], **fields)
    return GROUND_INTRO + GROUND_FORMATS[profile.reply_format].format(**fields)


def ground_schema(profile: VLMProfile) -> dict[str, Any]:
    """The JSON schema of the answer, for ``response_format`` (``--vlm-json-schema``)."""
    key = SCHEMA_KEY[profile.reply_format]
    box = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
    return {
        "name": "ground_answer",
        "schema": {
            "type": "object",
            "properties": {key: {"anyOf": [box, {"type": "null"}]}},
            "required": [key],
            "additionalProperties": False,
        },
    }


def ground_messages(
    expression: str, image_url: str, view: View, profile: VLMProfile | None = None
) -> list[dict[str, Any]]:
    """The one request: system prompt (how to answer, which coordinates), image, expression."""
    w, h = view.frame.wh
    text = f'Referring expression: "{expression}"\nImage: {w}x{h} pixels.'
    return [
        {"role": "system", "content": ground_system(view, profile or VLMProfile())},
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

    Takes ``{"box": [...], "points": [[x, y]], "labels": [...]}``, Qwen's
    ``[{"bbox_2d": [...], "label": ...}]`` and ``point_2d`` forms, Gemini's ``box_2d``,
    InternVL's ``<box>[[x1, y1, x2, y2]]</box>``, a bare ``[x0, y0, x1, y1]`` (fenced or inside
    prose), and Qwen2-VL's ``(x0,y0),(x1,y1)``; an empty list (or a null box) means nothing
    was found. The numbers are read in the order given; the view's convention maps them, and
    the prompt tool checks them.

    Raises:
        ToolError: the answer holds neither a box nor points.
    """
    for value in json_values(reply_body(text)):
        if value == []:
            return None  # an empty list of detections
        if isinstance(value, list) and isinstance(value[0], dict | list):
            value = value[0]  # detections: the first (InternVL's [[x1, y1, x2, y2]] too)
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
    profile = profile_of(client)
    messages = ground_messages(ep.ws.expression, show_image(ep), ep.ws.shown_view(), profile)
    schema = ground_schema(profile) if profile.json_schema else None
    try:
        reply = await ep.ask_vlm(
            client, messages, temperature=0.0, max_tokens=MAX_ANSWER_TOKENS, json_schema=schema
        )
    except VLMError as exc:
        raise _Fallback(f"the VLM failed: {exc}", fallback_kind(exc)) from None
    view = ep.ws.shown_view()
    try:
        args = parse_ground_answer(reply.content)
    except ToolError as exc:
        ep.log.info("ground", step=ep.step, answer=(reply.content or "")[:200], error=str(exc))
        raise _Fallback(str(exc), fallback_kind(exc)) from None  # e.g. oversized
    ep.log.info(
        "ground",
        step=ep.step,
        answer=(reply.content or "")[:200],
        units=view.units,
        view_size=list(view.frame.wh),
        found=args is not None,
        **({"dropped": list(reply.dropped)} if reply.dropped else {}),
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
            kept = "" if ep.config.answers_empty else "; kept the ranker's choice"  # else: empty mask
            ep.notes.append(f"ground: the VLM found no such object{kept}")
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
