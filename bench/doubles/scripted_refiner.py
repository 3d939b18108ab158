"""A scripted VLM refiner: deterministic rewrites, right or wrong, for generated scenes.

A scripted-server policy (:class:`bench.doubles.scripted_server.ScriptedServer`: real HTTP,
the real ``openai`` client) that answers the VLM refiner's requests
(:mod:`tools.refine_vlm`) from a table of rewrites per original expression: the first one not
among the request's "Queries already tried" (so a loop that is still unsure gets the next), or
the first again once every one was tried (the refiner then asks once more and the loop ends
with ``refiner_exhausted``). The answer depends only on the request's text, so the same
episode state always gets the same rewrite: what the guard replay needs from a VLM.

:func:`scene_rewrites` builds the table from generated scenes: per expression, the object's
canonical (``direct``) expression, its ``spatial`` one and a wrong object's canonical one, in
an order drawn per expression (seeded), so some rewrites help and some mislead. Other requests
(``ground``'s, the agent's) go to ``fallback`` when one is given. Usage is estimated as the
oracle VLM estimates it (text at 4 characters a token, a token per 28x28 image patch).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from bench.doubles.oracle_vlm import estimate_prompt_tokens
from bench.doubles.replies import Policy, Spec, Text, request_texts
from tools.base import normalise_query
from tools.offline.scenes import Scene, generate_scene

_ORIGINAL = re.compile(r"^Original expression: (.+)$", re.MULTILINE)
_TRIED = re.compile(r"^Queries already tried \(do not repeat any of them\): (.*)$", re.MULTILINE)
REFINER_SYSTEM = "You help a referring-segmentation"


class ScriptedRefiner:
    """A :data:`bench.doubles.replies.Policy` (see the module docstring).

    Args:
        rewrites: the rewrites of each original expression, in the order they are offered.
        fallback: answers requests that are not the refiner's (``None``: ``{"box": null}``).
    """

    def __init__(self, rewrites: dict[str, list[str]], fallback: Policy | None = None):
        self.rewrites = rewrites
        self.fallback = fallback

    def __call__(self, request: dict[str, Any]) -> Spec:
        texts = request_texts(request)
        if not texts or not texts[0].startswith(REFINER_SYSTEM):
            return self.fallback(request) if self.fallback is not None else Text('{"box": null}')
        body = "\n".join(texts[1:])
        original = _ORIGINAL.search(body)
        expression = original.group(1).strip() if original else ""
        tried_line = _TRIED.search(body)
        tried = {normalise_query(q) for q in (tried_line.group(1).split(" | ") if tried_line else [])}
        options = self.rewrites.get(expression) or [expression]
        query = next((q for q in options if normalise_query(q) not in tried), options[0])
        answer = json.dumps({"query": query, "rationale": "scripted"})
        return Text(answer, prompt_tokens=estimate_prompt_tokens(request), completion_tokens=len(answer) // 4)


def _order(expression: str, options: list[str], wrong_first: float) -> list[str]:
    """``options`` (right ones first) with the wrong one moved first for a seeded share."""
    draw = int(hashlib.sha256(expression.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if draw < wrong_first and len(options) > 1:
        return [options[-1], *options[:-1]]
    return options


def scene_rewrites(scenes: Sequence[Scene], *, wrong_first: float = 0.35) -> dict[str, list[str]]:
    """Rewrites for every expression of ``scenes`` (the first scene that has it wins).

    Args:
        scenes: generated scenes (:func:`tools.offline.scenes.generate_scene`).
        wrong_first: the share of expressions whose first rewrite names another object.
    """
    table: dict[str, list[str]] = {}
    for scene in scenes:
        for i, obj in enumerate(scene.objects):
            other = scene.objects[(i + 1) % len(scene.objects)]
            right = [*obj.expressions_of("direct")[:1], *obj.expressions_of("spatial")[:1]]
            wrong = other.expressions_of("direct")[:1] if other is not obj else []
            for expression in obj.expressions:
                options = [q for q in dict.fromkeys([*right, *wrong]) if q != expression]
                table.setdefault(expression, _order(expression, options, wrong_first))
    return table


def synthetic_rewrites(n: int, seed: int = 0, *, wrong_first: float = 0.35) -> dict[str, list[str]]:
    """:func:`scene_rewrites` of the ``synthetic`` data set's scenes (``--n n --seed-subset seed``)."""
    return scene_rewrites([generate_scene(seed + i) for i in range(n)], wrong_first=wrong_first)
