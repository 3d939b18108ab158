"""An oracle VLM for measuring grounded prompts: a scripted-server policy that knows the answers.

Served by :class:`bench.doubles.scripted_server.ScriptedServer` (real HTTP, the real ``openai`` client),
it answers the three kinds of request refseg sends, told apart by their system prompts:

- ``ground`` (:mod:`agent.ground_controller`): the target's box, scaled to the picture it was shown
  (read from the request's ``Image: WxH pixels.`` line) or to 0-1000 when the prompt asks;
- agent turns (function calling, warm-started): the proposer's prompt tool with that box,
  then the ranker, then ``submit`` of the drawn candidate;
- the VLM refiner: the target's canonical expression.

With ``jitter`` each box corner moves by up to that fraction of the box's size (seeded per
expression), to measure how much grounding depends on box precision. Usage is estimated the
way a Qwen2.5-VL endpoint would count it (text at 4 characters a token, one token per
28x28 patch of each image), so tokens per example mean something.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.doubles.replies import Call, Spec, Text, ToolCalls, request_texts

_EXPRESSION = re.compile(r'(?:Referring|Original) expression: "?(.+?)"?\n')
_SIZE = re.compile(r"Image: (\d+)x(\d+) pixels")
PATCH = 28


@dataclass(frozen=True)
class Target:
    """What the oracle knows about one expression.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in the original image's pixels (continuous corners).
        size: ``(W, H)`` of the original image.
        canonical: the expression in the ranker's own words (the refiner's answer).
    """

    box: tuple[float, float, float, float]
    size: tuple[int, int]
    canonical: str


def _image_sizes(request: dict[str, Any]) -> list[tuple[int, int]]:
    sizes = []
    for msg in request.get("messages", []):
        content = msg.get("content")
        for part in content if isinstance(content, list) else []:
            url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else ""
            if url.startswith("data:"):
                data = base64.b64decode(url.split(",", 1)[1])
                sizes.append(PILImage.open(io.BytesIO(data)).size)
    return sizes


def estimate_prompt_tokens(request: dict[str, Any]) -> int:
    """Text (and tool schemas) at 4 characters a token plus one token per 28x28 image patch."""
    chars = sum(len(t) for t in request_texts(request)) + len(json.dumps(request.get("tools", [])))
    patches = sum(-(-w // PATCH) * -(-h // PATCH) for w, h in _image_sizes(request))
    return chars // 4 + patches


class OracleVLM:
    """A :data:`bench.doubles.replies.Policy` answering from known targets (see module docstring).

    Args:
        targets: by expression (as the request quotes it).
        jitter: fraction of the box's width/height each corner may move (0: exact boxes).
        proposer, ranker, prompt_tool: the agent's tool names.
    """

    def __init__(
        self,
        targets: dict[str, Target],
        *,
        jitter: float = 0.0,
        proposer: str = "region_propose",
        ranker: str = "attribute_rank",
        prompt_tool: str = "region_prompt",
    ):
        self.targets = targets
        self.jitter = jitter
        self.proposer, self.ranker, self.prompt_tool = proposer, ranker, prompt_tool

    def __call__(self, request: dict[str, Any]) -> Spec:
        system = next(iter(request_texts(request)), "")
        tokens = estimate_prompt_tokens(request)
        if system.startswith("You locate objects"):
            answer = json.dumps({"box": self.box(request, "normalised" in system)})
            return Text(answer, prompt_tokens=tokens, completion_tokens=len(answer) // 4)
        if system.startswith("You help a referring-segmentation"):
            answer = json.dumps({"query": self._target(request).canonical, "rationale": "oracle"})
            return Text(answer, prompt_tokens=tokens, completion_tokens=len(answer) // 4)
        call = self._agent_call(request, "normalised" in system)
        if call is None:
            return Text("The tool refused; I cannot do better.", prompt_tokens=tokens)
        out = len(json.dumps(call.arguments)) // 4
        return ToolCalls.of(call, prompt_tokens=tokens, completion_tokens=out)

    def _target(self, request: dict[str, Any]) -> Target:
        for text in request_texts(request):
            found = _EXPRESSION.search(text + "\n")
            if found and found.group(1) in self.targets:
                return self.targets[found.group(1)]
        raise KeyError("the oracle does not know this expression")

    def box(self, request: dict[str, Any], normalised: bool) -> list[float]:
        """The target's box in the shown picture (or 0-1000), jittered when asked."""
        target = self._target(request)
        shown = next((m for t in request_texts(request) if (m := _SIZE.search(t))), None)
        view_w, view_h = (int(shown.group(1)), int(shown.group(2))) if shown else target.size
        if normalised:
            view_w = view_h = 1000
        x0, y0, x1, y1 = target.box
        sx, sy = view_w / target.size[0], view_h / target.size[1]
        box = np.array([x0 * sx, y0 * sy, x1 * sx, y1 * sy])
        if self.jitter:
            key = f"{target.canonical}|{target.box}".encode()
            seed = int(hashlib.sha256(key).hexdigest()[:8], 16)
            w, h = box[2] - box[0], box[3] - box[1]
            box += np.random.default_rng(seed).uniform(-self.jitter, self.jitter, 4) * [w, h, w, h]
        return [round(float(v), 1) for v in box]

    def _agent_call(self, request: dict[str, Any], normalised: bool) -> Call | None:
        """Warm-started: prompt tool, ranker, submit the drawn candidate (cold: propose and
        rank first). ``None`` (no tool call) when a tool refused."""
        messages = request.get("messages", [])
        tools = [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]
        last = tools[-1] if tools else {}
        added = next((t["added"] for t in reversed(tools) if "added" in t), None)
        if "error" in last:
            return None
        if added and "top" in last:
            return Call("submit", {"index": added[0]["index"], "reason": "the drawn object"})
        if "added" in last:
            return Call(self.ranker, {})
        warm = any("already ran" in t for t in request_texts(request))
        if not warm and not tools:
            return Call(self.proposer, {})
        if "n_proposals" in last:
            return Call(self.ranker, {})
        return Call(self.prompt_tool, {"box": self.box(request, normalised)})
