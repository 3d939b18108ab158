"""Scripted VLMs that answer as real models do: one per coordinate convention and tool-call style.

A :class:`ConventionVLM` is a :class:`bench.doubles.scripted_server.ScriptedServer` policy (real HTTP,
the real ``openai`` client) built from the documented reply formats:

- ``qwen2.5-vl``: fenced ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]`` in pixels of the
  image *after* Qwen's resize onto its 28-pixel grid (:func:`tools.coords.smart_resize`);
- ``qwen3-vl``: the same JSON in 0-1000 coordinates;
- ``gemini``: fenced ``[{"box_2d": [ymin, xmin, ymax, xmax], "label": ...}]``, 0-1000;
- ``internvl``: ``<ref>label</ref><box>[[x1, y1, x2, y2]]</box>``, 0-1000;
- ``pixels``, ``norm1``, ``percent``: ``{"box": [...]}`` in pixels of the image received, 0-1
  fractions, or percent (Molmo's unit).

Tool-call styles: ``native`` (``tool_calls`` when the request has ``tools``; text otherwise),
``hermes`` (ignores ``tools``; ``<tool_call>{...}</tool_call>`` in ``content``), ``json``
(ignores ``tools``; a fenced JSON call), ``strict`` (vLLM without a tool-call parser: HTTP
400 to a request with ``tools``, Hermes text otherwise) and ``llamacpp`` (an older llama.cpp
without ``--jinja``: HTTP 500 "tools param requires --jinja flag"). ``reasoning``: ``none``, ``think``
(``<think>...</think>`` before the answer) or ``field`` (``reasoning_content`` and
``completion_tokens_details.reasoning_tokens``). ``json_schema``: ``ignore``, ``accept`` (the
schema's object) or ``refuse`` (HTTP 400 to ``response_format``).

What it sees is what it received: the frame is the decoded image of the request (not what
the prompt says), the object the known target of the expression scaled to it, or, for a
picture with no known expression (the probe's), the pixels unlike the background.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.doubles.oracle_vlm import Target, estimate_prompt_tokens
from bench.doubles.replies import Call, Raw, Spec, Status, Text, ToolCalls, completion_json, request_texts
from tools.coords import Frame, Units, View

THOUGHT = "The user wants one object. I look at the picture, find it, and answer in my format."
REASONING_TOKENS = 40
VLLM_NO_PARSER = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
LLAMACPP_NO_JINJA = "tools param requires --jinja flag"
COLOURS = {"red": (210, 35, 35), "blue": (35, 70, 210), "green": (30, 160, 60)}


@dataclass(frozen=True)
class Convention:
    """How a model family writes a box: units, JSON form, whether pixels are of its grid frame."""

    units: Units
    form: str  # box | bbox_2d | box_2d | ref_box
    grid: bool = False
    digits: int = 0


CONVENTIONS: dict[str, Convention] = {
    "qwen2.5-vl": Convention("pixels", "bbox_2d", grid=True),
    "qwen3-vl": Convention("norm1000", "bbox_2d"),
    "gemini": Convention("norm1000-yx", "box_2d"),
    "internvl": Convention("norm1000", "ref_box"),
    "pixels": Convention("pixels", "box"),
    "norm1": Convention("norm1", "box", digits=3),
    "percent": Convention("percent", "box", digits=1),
}
# What `refseg vlm probe` should suggest for each: (--vlm-coords, the grid profile or None).
EXPECTED: dict[str, tuple[str, str | None]] = {
    "qwen2.5-vl": ("pixels", "qwen2.5-vl"),
    "qwen3-vl": ("norm1000", None),
    "gemini": ("norm1000-yx", None),
    "internvl": ("norm1000", None),
    "pixels": ("pixels", None),
    "norm1": ("norm1", None),
    "percent": ("percent", None),
}
TOOL_STYLES = ("native", "hermes", "json", "strict", "llamacpp")


class ConventionVLM:
    """A scripted VLM answering in one convention and tool-call style (see the module docstring).

    Args:
        convention: a key of :data:`CONVENTIONS`.
        tool_style: a member of :data:`TOOL_STYLES`.
        reasoning, json_schema: see the module docstring.
        targets: the known objects by expression (``ground`` and ``agent`` scenes).
        proposer, ranker, prompt_tool: the agent's tool names.
    """

    def __init__(
        self,
        convention: str,
        tool_style: str = "native",
        *,
        reasoning: str = "none",
        json_schema: str = "ignore",
        targets: dict[str, Target] | None = None,
        proposer: str = "region_propose",
        ranker: str = "attribute_rank",
        prompt_tool: str = "region_prompt",
    ):
        self.name, self.convention = convention, CONVENTIONS[convention]
        self.tool_style, self.reasoning, self.json_schema = tool_style, reasoning, json_schema
        self.targets = targets or {}
        self.proposer, self.ranker, self.prompt_tool = proposer, ranker, prompt_tool
        self._ids = itertools.count(1)

    def __call__(self, request: dict[str, Any]) -> Spec:
        schema = (request.get("response_format") or {}).get("json_schema")
        if schema is not None and self.json_schema == "refuse":
            return Status(400, "response_format of type json_schema is not supported by this server")
        if request.get("tools") and self.tool_style == "strict":
            return Status(400, VLLM_NO_PARSER)
        if request.get("tools") and self.tool_style == "llamacpp":
            return Status(500, LLAMACPP_NO_JINJA)
        reply = self._answer(request, schema if self.json_schema == "accept" else None)
        return self._wrap(reply, request)

    # -- what to answer ------------------------------------------------------------------

    def _answer(self, request: dict[str, Any], schema: dict[str, Any] | None) -> str | list[Call]:
        texts = request_texts(request)
        system, joined = (texts[0] if texts else ""), "\n".join(texts)
        image = _first_image(request)
        if system.startswith("You segment the single object"):
            return self._agent_turn(request, image)
        if system.startswith("You help a referring-segmentation"):
            target = self._target(joined)
            return json.dumps(
                {"query": target.canonical if target else "the object", "rationale": "scripted"}
            )
        if system.startswith("You locate objects") or "Locate the" in joined:
            box = self._object_box(joined, image)
            return self._box_reply(box, image, schema) if box is not None and image is not None else "[]"
        if "get_weather" in joined:
            return [Call("get_weather", {"city": "Paris"})]
        if "What colour" in joined:
            return _colour_name(image) if image is not None else "I cannot see any image."
        if schema is not None:
            return json.dumps({key: "ready" for key in schema.get("schema", {}).get("properties", {})})
        return "ready"

    def _target(self, text: str) -> Target | None:
        return next((t for expr, t in self.targets.items() if f'"{expr}"' in text), None)

    def _object_box(self, text: str, image: np.ndarray | None) -> np.ndarray | None:
        """The object's box ``[x0, y0, x1, y1]`` in pixels of the image received."""
        if image is None:
            return None
        h, w = image.shape[:2]
        target = self._target(text)
        if target is not None:
            sx, sy = w / target.size[0], h / target.size[1]
            return np.array(target.box) * [sx, sy, sx, sy]
        unlike = np.abs(image.astype(np.int32) - image[0, 0].astype(np.int32)).sum(axis=2) > 90
        ys, xs = np.flatnonzero(unlike.any(axis=1)), np.flatnonzero(unlike.any(axis=0))
        return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], float) if ys.size else None

    def numbers(self, box: np.ndarray, received: Frame) -> list[float]:
        """``box`` (pixels of the received image) written in this model's convention."""
        conv = self.convention
        frame = received.on_grid() if conv.grid else received
        in_frame = box * ([frame.width / received.width, frame.height / received.height] * 2)
        values = View(frame, conv.units).box_from(in_frame, frame)
        return [round(float(v), conv.digits) if conv.digits else round(float(v)) for v in values]

    def _box_reply(self, box: np.ndarray, image: np.ndarray, schema: dict[str, Any] | None) -> str:
        numbers = self.numbers(box, Frame(image.shape[1], image.shape[0]))
        form = self.convention.form
        if schema is not None:  # structured outputs: the schema's one key
            key = next(iter(schema.get("schema", {}).get("properties", {})), "box")
            return json.dumps({key: numbers})
        if form == "ref_box":
            return f"<ref>the object</ref><box>[[{', '.join(map(str, numbers))}]]</box>"
        if form == "box":
            return json.dumps({"box": numbers})
        return "```json\n" + json.dumps([{form: numbers, "label": "the object"}], indent=2) + "\n```"

    def _agent_turn(self, request: dict[str, Any], image: np.ndarray | None) -> str | list[Call]:
        """Warm-started: the prompt tool with the box, the ranker, then submit the drawn candidate."""
        results = _tool_results(request.get("messages", []))
        last = results[-1] if results else {}
        added = next((r["added"] for r in reversed(results) if "added" in r), None)
        if "error" in last:
            return "The tool refused; I cannot do better."
        if added and "top" in last:
            return [Call("submit", {"index": added[0]["index"], "reason": "the drawn object"})]
        if "added" in last:
            return [Call(self.ranker, {})]
        if not results and not any("already ran" in t for t in request_texts(request)):
            return [Call(self.proposer, {})]
        if "n_proposals" in last and "top" not in last:
            return [Call(self.ranker, {})]
        box = self._object_box("\n".join(request_texts(request)), image)
        if box is None or image is None:
            return "I cannot find it."
        return [Call(self.prompt_tool, {"box": self.numbers(box, Frame(image.shape[1], image.shape[0]))})]

    # -- how to send it ------------------------------------------------------------------

    def _wrap(self, answer: str | list[Call], request: dict[str, Any]) -> Spec:
        tokens = estimate_prompt_tokens(request)
        if isinstance(answer, list) and self.tool_style == "native" and request.get("tools"):
            spec: Text | ToolCalls = ToolCalls(tuple(answer), prompt_tokens=tokens)
        else:
            text = answer if isinstance(answer, str) else _calls_as_text(answer, self.tool_style)
            spec = Text(text, prompt_tokens=tokens, completion_tokens=max(1, len(text) // 4))
        if self.reasoning == "think":
            thought = f"<think>\n{THOUGHT}\n</think>\n\n"
            spec = Text(thought + spec.content, prompt_tokens=tokens) if isinstance(spec, Text) else spec
        body = completion_json(spec, next(self._ids), str(request.get("model", "scripted")))
        if self.reasoning == "field":
            body["choices"][0]["message"]["reasoning_content"] = THOUGHT
            usage = body["usage"]
            usage["completion_tokens"] += REASONING_TOKENS
            usage["total_tokens"] += REASONING_TOKENS
            usage["completion_tokens_details"] = {"reasoning_tokens": REASONING_TOKENS}
        return Raw(200, body)


def _calls_as_text(calls: list[Call], style: str) -> str:
    dumped = [json.dumps({"name": c.name, "arguments": c.arguments}) for c in calls]
    if style == "json":
        return "```json\n" + "\n".join(dumped) + "\n```"
    return "\n".join(f"<tool_call>\n{d}\n</tool_call>" for d in dumped)


def _first_image(request: dict[str, Any]) -> np.ndarray | None:
    """The first image of the request, decoded (the frame this model answers in)."""
    for msg in request.get("messages", []):
        for part in msg.get("content") if isinstance(msg.get("content"), list) else []:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith("data:"):
                data = base64.b64decode(url.split(",", 1)[1])
                return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    return None


def received_sizes(requests: list[Any]) -> list[tuple[int, int]]:
    """``(W, H)`` of every image a server received (``RecordedRequest`` list), in order."""
    sizes = []
    for req in requests:
        for url in req.image_urls():
            if url.startswith("data:"):
                sizes.append(PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size)
    return sizes


def _colour_name(image: np.ndarray) -> str:
    unlike = np.abs(image.astype(np.int32) - image[0, 0].astype(np.int32)).sum(axis=2) > 90
    if not unlike.any():
        return "none"
    mean = image[unlike].mean(axis=0)
    return min(COLOURS, key=lambda name: float(np.sum((mean - COLOURS[name]) ** 2)))


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool results the conversation holds: ``tool`` messages, or ``<tool_response>`` blocks."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        content = msg.get("content")
        if msg.get("role") == "tool" and isinstance(content, str):
            out.append(json.loads(content))
        elif msg.get("role") == "user" and isinstance(content, str) and "<tool_response>" in content:
            for block in content.split("<tool_response>")[1:]:
                out.append(json.loads(block.split("</tool_response>")[0])["content"])
    return out
