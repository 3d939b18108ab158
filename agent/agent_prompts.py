"""What the ``agent`` controller shows the VLM: the prompt, the images and the tool answers.

The model sees the expression and the image (longest side :data:`IMAGE_SIDE`; boxes and
points in its pixels, or 0-1000 normalised: :class:`tools.coords.View`); after each
ranking, a smaller picture with the top candidates outlined and labelled by index (drawn by
:func:`tools.render.outline_candidates`); and each tool's output as compact JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.episode import EpisodeConfig
from agent.submit import SUBMIT
from cache.lru import LRU
from tools.base import Workspace
from tools.coords import Frame, View
from tools.images import downscale, resize_to
from tools.render import image_data_url, outline_candidates
from tools.types import Image, Proposals, Ranking, Refinement

IMAGE_SIDE = 768  # longest side of the image the model sees (boxes are in its pixels)
OVERLAY_SIDE = 448  # candidate overlays are smaller: they only need to show outlines
OVERLAY_TOP_K = 4
RESULT_TOP_K = 5
JPEG_QUALITY = 85
# Pictures already encoded, by what they show (see view_url and overlay_message).
_VIEWS: LRU[tuple[str, int, int, int], str] = LRU(16)
_OVERLAYS: LRU[tuple[str, str, tuple[int, ...]], str] = LRU(256)
NUDGE = (
    "Call a tool or submit: reply with a function call (for example the ranker, or "
    f"{SUBMIT} with the index of the candidate that matches the expression)."
)

SYSTEM_PROMPT = """\
You segment the single object that a referring expression describes in an image.
You cannot draw masks yourself; you work through tools:
- {proposer}: {proposer_line}
- {ranker}: scores every candidate against the current query and returns the top \
candidates (index, probability, box), with conf (top-1 probability) and gap (top-1 minus \
top-2). A picture with the top candidates outlined and numbered by index follows.
- {refiner}: rewrites the query (head noun, colour, position) when the ranking is unsure; \
rank again afterwards.{prompt}{others}
- {submit}: your final answer, the index of the candidate that matches the expression.
When the ranker is confident enough the system stops on its own. Otherwise look at the \
outlined candidates: submit the right index if you see it, or refine and rank again. \
Boxes are {box_form} (the top-left and bottom-right corners) and points {point_form}, in \
{coords}. Always answer with a function call; be brief."""
NO_MATCH_LINE = """
The expression may refer to nothing in this image: when no object matches it, call {submit} \
with no_match: true instead of an index."""
PROPOSER_LINE = "proposes candidate masks for the whole image. Call it first."
TEXT_PROPOSER_LINE = (
    "finds every instance of a short noun phrase (its query; default: the current query) and "
    "adds them to the candidates; it may find nothing. Call it first, and again with another "
    "phrase (e.g. the head noun) when the object is not among the candidates."
)
PROMPT_LINE = """
- {name}: when no candidate is the object, give the object's box (and/or points on it) to \
draw its mask; it becomes a new candidate: rank again, then submit its index."""


def encode_view(pixels: np.ndarray, max_side: int, frame: Frame) -> str:
    """A JPEG data URL of ``pixels`` downscaled to ``max_side``, then resized to exactly
    ``frame`` (a grid the VLM's processor would resize to anyway; nothing when it is already
    that size)."""
    small = resize_to(downscale(pixels, max_side), (frame.height, frame.width))
    return image_data_url(small, max_side=max(small.shape[:2]), quality=JPEG_QUALITY)


def view_url(image: Image, max_side: int, frame: Frame) -> str:
    """:func:`encode_view` of ``image``, encoded once per image and frame in this process (every
    expression of an image shows the model the same picture)."""
    key = (image.digest, max_side, frame.width, frame.height)
    url = _VIEWS.get(key)
    if url is None:
        url = encode_view(image.pixels, max_side, frame)
        _VIEWS.put(key, url)
    return url


def encode_jpeg(pixels: np.ndarray, max_side: int) -> tuple[str, tuple[int, int]]:
    """A JPEG data URL of ``pixels`` downscaled to ``max_side``; returns it and ``(W, H)``."""
    small = downscale(pixels, max_side)
    # Scaled here, so the size the boxes refer to is known exactly.
    url = image_data_url(small, max_side=max(small.shape[:2]), quality=JPEG_QUALITY)
    return url, (int(small.shape[1]), int(small.shape[0]))


def opening_messages(
    cfg: EpisodeConfig,
    others: list[tuple[str, str]],
    expression: str,
    image_url: str,
    view: View,
    prompt_tool: str | None = None,
    text_proposer: bool = False,
) -> list[dict[str, Any]]:
    """The system prompt and the first user message (expression and image).

    Args:
        others: ``(name, description)`` of the extra tools on offer.
        view: the image as the model sees it, and the coordinate units.
        prompt_tool: the proposer's prompt tool, when it is on offer.
        text_proposer: the proposer finds instances of a phrase (SAM 3), not every mask.
    """
    system = SYSTEM_PROMPT.format(
        proposer=cfg.proposer,
        proposer_line=TEXT_PROPOSER_LINE if text_proposer else PROPOSER_LINE,
        ranker=cfg.ranker,
        refiner=cfg.refiner,
        submit=SUBMIT,
        prompt=PROMPT_LINE.format(name=prompt_tool) if prompt_tool else "",
        others="".join(f"\n- {name}: {description}" for name, description in others),
        coords=view.describe(),
        box_form=view.box_form,
        point_form=view.point_form,
    )
    if cfg.answers_empty:
        system += NO_MATCH_LINE.format(submit=SUBMIT)
    w, h = view.frame.wh
    text = f'Referring expression: "{expression}"\nImage: {w}x{h} pixels.'
    return [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": image_url}},
            ],
        },
    ]


def shown_box(ws: Workspace, index: int) -> list[int]:
    """Proposal ``index``'s box in the coordinates of the picture the model was shown."""
    assert ws.proposals is not None
    x0, y0, x1, y1 = (float(v) for v in ws.proposals.boxes[index])
    tight = [x0, y0, x1 + 1, y1 + 1]  # inclusive pixel extents -> continuous corners
    return [round(float(v)) for v in ws.shown_view().box_from(tight, ws.working_frame)]


def ranking_payload(ranking: Ranking, ws: Workspace) -> dict[str, Any]:
    """The top candidates (index, probability, box in the shown image's coordinates, origin
    when candidates come from several tools), conf and gap."""
    props = ws.proposals
    if len(ranking) == 0:
        return {
            "query": ranking.query,
            "n": 0,
            "found": "nothing for this query: propose with another short phrase, or give the "
            "object's box to the prompt tool",
        }
    top = []
    for i in ranking.order[:RESULT_TOP_K]:
        entry: dict[str, Any] = {"index": int(i), "prob": round(float(ranking.probs[i]), 4)}
        if props is not None and int(i) < len(props):
            entry["box"] = shown_box(ws, int(i))
            if props.mixed_origins:
                entry["origin"] = str(props.origins[int(i)])
        top.append(entry)
    return {
        "query": ranking.query,
        "n": len(ranking),
        "top": top,
        "conf": round(ranking.conf, 4),
        "gap": round(ranking.gap, 4),
        "guard": "not passed: not sure enough to stop",
    }


def prompt_payload(output: Proposals, added: list[int], ws: Workspace, ranker: str) -> dict[str, Any]:
    """What the model gets back from a prompt tool: the new candidates' indices and boxes."""
    return {
        "added": [{"index": i, "box": shown_box(ws, i), "origin": str(output.origins[0])} for i in added],
        "n_proposals": len(ws.proposals) if ws.proposals is not None else 0,
        "next": f"call {ranker} to score the candidates, then {SUBMIT} the index that is the object",
    }


def tool_payload(output: Any, ws: Workspace, ranker: str) -> dict[str, Any]:
    """The compact JSON the model gets back for one tool output (boxes in the shown
    image's coordinates)."""
    if isinstance(output, Proposals):
        if len(output) == 0:
            return {"n_proposals": 0, "next": "no candidate masks: try other proposer arguments"}
        return {"n_proposals": len(output), "next": f"call {ranker}"}
    if isinstance(output, Ranking):
        return ranking_payload(output, ws)
    if isinstance(output, Refinement):
        return {"query": output.query, "rationale": output.rationale[:200], "next": f"call {ranker}"}
    summary = getattr(output, "summary", None)
    return summary() if callable(summary) else {"result": str(output)[:500]}


def overlay_candidates(ws: Workspace, ranking: Ranking) -> tuple[int, ...]:
    """The candidates worth outlining for ``ranking`` (none when the picture would add nothing)."""
    props = ws.proposals
    if props is None or len(ranking) < 2 or len(ranking) != len(props):
        return ()
    return tuple(int(i) for i in ranking.order[:OVERLAY_TOP_K])


def overlay_message(ws: Workspace, top: tuple[int, ...]) -> dict[str, Any]:
    """A small user image message with the ``top`` candidates outlined and labelled by index.

    Drawn once per image, candidates and indices, in this process: the expressions of one
    image often share their top candidates, and drawing and encoding is the agent's largest
    piece of Python work per turn.
    """
    assert ws.proposals is not None
    key = (ws.image.digest, ws.proposals.digest, top)
    url = _OVERLAYS.get(key)
    if url is None:
        chosen = [ws.proposals.masks[i] for i in top]
        picture = outline_candidates(ws.image.pixels, chosen, [str(i) for i in top], max_side=OVERLAY_SIDE)
        url, _ = encode_jpeg(picture, OVERLAY_SIDE)
        _OVERLAYS.put(key, url)
    text = "Top candidates outlined, labelled by index: " + ", ".join(map(str, top))
    return {
        "role": "user",
        "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
    }
