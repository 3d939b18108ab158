"""The VLM refiner: ask a vision-language model for a clearer query for the ranker.

The model sees the image, an overlay of the current top-3 candidates (outlined in the
colours of :data:`tools.render.PALETTE` and numbered 1-3; the prompt names each colour), the
original expression, the current query and every query already tried, and answers
``{"query": ..., "rationale": ...}``. Replies are parsed leniently: code fences, JSON inside
prose, and plain text (first line) all work.

``tools`` never imports ``agent``: the client is any :class:`tools.base.ChatClient`, and
reply fields (``content``, ``tokens_in``, ``tokens_out``, ``usd``, ``model``) are read by
attribute. Transport failures (``VLMError``) propagate; the controller falls back.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tools.base import ChatClient, Workspace
from tools.errors import ToolError
from tools.json_reply import json_values, reply_body
from tools.render import image_data_url, outline_candidates, palette_colour
from tools.types import Refinement

MAX_QUERY_CHARS = 300
TOP_K = 3
MAX_HISTORY = 12  # queries listed in the prompt (a loop tries a handful)

SYSTEM_PROMPT = (
    "You help a referring-segmentation system. Candidate object masks are ranked by CLIP "
    "against a short text query; when the ranking is unsure, you rewrite the query so that "
    "CLIP picks the object the ORIGINAL expression refers to. Never change which object is "
    "meant. Prefer a short, concrete phrase (at most 12 words): the object's category, colour, "
    "distinctive parts, and its position if it helps. "
    'Reply with JSON only: {"query": "...", "rationale": "..."}.'
)


NO_MATCH_PROMPT = (
    "The expression may refer to nothing in this image. If no object in the image matches the "
    'ORIGINAL expression, reply {"query": null, "no_match": true, "rationale": "..."} instead.'
)


# The reply's shape, for servers that take response_format (asked only with --vlm-json-schema).
REFINE_SCHEMA = {
    "name": "refined_query",
    "schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "rationale": {"type": "string"}},
        "required": ["query", "rationale"],
        "additionalProperties": False,
    },
}


# The same when "nothing matches" is an answer (allow_none).
REFINE_OR_NONE_SCHEMA = {
    "name": "refined_query_or_none",
    "schema": {
        "type": "object",
        "properties": {
            "query": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "no_match": {"type": "boolean"},
            "rationale": {"type": "string"},
        },
        "required": ["query", "no_match", "rationale"],
        "additionalProperties": False,
    },
}


def top_candidates(ws: Workspace, k: int = TOP_K) -> list[tuple[int, float | None]]:
    """``(proposal index, probability or None)`` of the best ``k`` candidates, best first."""
    props = ws.proposals
    if props is None or len(props) == 0:
        return []
    ranking = ws.ranking
    if ranking is not None and len(ranking) == len(props):
        return [(int(i), float(ranking.probs[i])) for i in ranking.order[:k]]
    order = np.argsort(-props.scores, kind="stable")[:k]  # no usable ranking: proposer score
    return [(int(i), None) for i in order]


def candidate_overlay(ws: Workspace, k: int = TOP_K) -> np.ndarray | None:
    """The image with the top-``k`` masks outlined in palette colours, each labelled with its
    proposal index (``#12``), as every picture and record numbers candidates."""
    top = top_candidates(ws, k)
    if not top or ws.proposals is None:
        return None
    masks = [ws.proposals.masks[idx] for idx, _ in top]
    return outline_candidates(ws.image.pixels, masks, [f"#{idx}" for idx, _ in top])


def build_messages(ws: Workspace, hint: str | None, allow_none: bool = False) -> list[dict[str, Any]]:
    """The chat messages of one refinement request (``allow_none``: "nothing matches" is an
    answer the caller takes)."""
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(ws.image.pixels)}}
    ]
    lines = [
        f"Original expression: {ws.expression}",
        f"Current query: {ws.query}",
        "Queries already tried (do not repeat any of them): " + " | ".join(ws.history[-MAX_HISTORY:]),
    ]
    overlay = candidate_overlay(ws)
    if overlay is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(overlay)}})
        described = []
        for rank, (idx, prob) in enumerate(top_candidates(ws)):
            p = "" if prob is None else f", p={prob:.2f}"
            described.append(f"#{idx} ({palette_colour(rank).name}{p})")
        lines.append(
            "The second image outlines the current top candidates, best first: "
            + ", ".join(described)
            + ". If the best one is not the referred object, describe the referred object so it "
            "can be told apart from the others."
        )
    if hint:
        lines.append(f"Hint: {hint}")
    lines.append('Reply with JSON only: {"query": "...", "rationale": "..."}')
    if allow_none:
        lines.append(NO_MATCH_PROMPT)
    content.append({"type": "text", "text": "\n".join(lines)})
    system = SYSTEM_PROMPT + (" " + NO_MATCH_PROMPT if allow_none else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


_PREFIX = re.compile(r"^(?:new\s+|refined\s+|better\s+)?(?:query|expression)\s*[:=-]\s*", re.IGNORECASE)


def parse_refinement(text: str) -> tuple[str, str]:
    """``(query, rationale)`` from a reply: JSON (fenced or inside prose) or plain text.

    Raises:
        ToolError: the reply holds no usable query.
    """
    body = reply_body(text)
    for value in json_values(body):
        if isinstance(value, dict):
            query = value.get("query")
            if isinstance(query, str) and query.strip():
                rationale = value.get("rationale", "")
                return _clean(query), rationale if isinstance(rationale, str) else str(rationale)
            raise ToolError('the VLM reply is JSON without a non-empty "query" string; reply again')
    first = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
    query = _clean(_PREFIX.sub("", first.lstrip("-*# ").strip()))
    if not query:
        raise ToolError("the VLM returned an empty reply; no refined query")
    return query, ""


def _clean(query: str) -> str:
    query = " ".join(query.split()).strip("\"'` ")
    return query[:MAX_QUERY_CHARS].strip()


def parse_no_match(text: str) -> str | None:
    """The rationale when the reply says nothing matches (``{"no_match": true, ...}``), else ``None``."""
    for value in json_values(reply_body(text)):
        if isinstance(value, dict) and value.get("no_match") is True:
            return str(value.get("rationale") or "")
        if isinstance(value, dict):
            return None
    return None


async def _ask(
    client: ChatClient, messages: list[dict[str, Any]], allow_none: bool = False
) -> tuple[Any, str, str]:
    """One request: the reply, and its ``(query, rationale)`` (query ``""``: nothing matches,
    when ``allow_none``)."""
    schema = REFINE_OR_NONE_SCHEMA if allow_none else REFINE_SCHEMA
    reply = await client.complete(messages, temperature=0.2, max_tokens=200, json_schema=schema)
    content = getattr(reply, "content", "") or ""
    if not content.strip() and getattr(reply, "tool_calls", None):
        raise ToolError("the VLM answered with tool calls instead of a refined query")
    none_because = parse_no_match(content) if allow_none else None
    if none_because is not None:
        return reply, "", none_because
    query, rationale = parse_refinement(content)
    return reply, query, rationale


def _spent(replies: list[Any]) -> dict[str, Any]:
    return {
        "tokens_in": sum(int(getattr(r, "tokens_in", 0) or 0) for r in replies),
        "tokens_out": sum(int(getattr(r, "tokens_out", 0) or 0) for r in replies),
        "usd": sum(float(getattr(r, "usd", 0.0) or 0.0) for r in replies),
    }


async def refine_with_vlm(
    client: ChatClient, ws: Workspace, hint: str | None, allow_none: bool = False
) -> Refinement:
    """Ask the VLM for a better query for ``ws`` (with ``allow_none``, or its answer that nothing
    in the image matches: ``no_match``).

    The prompt lists the queries already tried. A reply that repeats one (compared case-,
    space- and punctuation-blind) is sent back once, saying so; a second repeat is returned
    as it is, and the workspace rejects it (the loop then stops with ``refiner_exhausted``).
    The tokens and USD of both requests are the refinement's.

    Raises:
        ToolError: the reply has no usable query (empty, or only tool calls).
        VLMError: the VLM could not be reached (from the client).
    """
    messages = build_messages(ws, hint, allow_none)
    reply, query, rationale = await _ask(client, messages, allow_none)
    replies = [reply]
    if query and ws.tried(query):
        again = [
            *messages,
            {"role": "assistant", "content": getattr(reply, "content", "") or query},
            {
                "role": "user",
                "content": f'"{query}" was already tried. Reply with a different query, '
                'JSON only: {"query": "...", "rationale": "..."}',
            },
        ]
        reply, query, rationale = await _ask(client, again, allow_none)
        replies.append(reply)
    model = getattr(reply, "model", "") or getattr(client, "model", "")
    return Refinement(
        query=query,
        rationale=rationale,
        source=f"vlm:{model}" if model else "vlm",
        no_match=not query,
        **_spent(replies),
    )
