"""Tool calls written as text: for servers that ignore ``tools`` or return calls in ``content``.

llama.cpp without ``--jinja``, vLLM without a tool-call parser and many gateways hand a
model's function call back as text. :func:`parse_text_tool_calls` reads, in this order:

- ``<tool_call>...</tool_call>`` blocks (Hermes / Qwen; an unclosed last block runs to the
  end), holding JSON ``{"name": ..., "arguments": {...}}`` or Qwen3-Coder's XML
  ``<function=NAME><parameter=KEY>VALUE</parameter></function>``;
- else fenced code blocks, else the bare text: every top-level JSON object (or array of
  them) that names a tool: ``{"name", "arguments" | "parameters" | "args" | "input"}`` or
  ``{"function": {...}}``.

Several calls per reply are read. It runs in linear time over at most
:data:`MAX_TEXT_CHARS` characters (one scan with ``str.find`` and a bracket counter; each
top-level span is decoded once) and builds at most :data:`MAX_TEXT_CALLS` calls; the agent
then applies the same caps as to native calls (calls per reply, per episode, argument size).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent.vlm_reply import ToolCall
from tools.safe_json import check_bounds

MAX_TEXT_CHARS = 64_000  # of one reply searched for calls (a reply is a few hundred)
MAX_TEXT_CALLS = 32  # calls built from one reply; the agent runs at most max_calls_per_reply
OPEN, CLOSE = "<tool_call>", "</tool_call>"
FENCE = "```"
NAME_KEYS = ("name", "tool", "tool_name")
ARG_KEYS = ("arguments", "parameters", "args", "input")


@dataclass(frozen=True)
class TextCalls:
    """The calls read from a reply's text; ``skipped``: calls past :data:`MAX_TEXT_CALLS`;
    ``cut``: the text was longer than :data:`MAX_TEXT_CHARS` and only its start was read."""

    calls: tuple[ToolCall, ...] = ()
    skipped: int = 0
    cut: bool = False


def parse_text_tool_calls(text: str | None) -> TextCalls:
    """The tool calls a reply's text holds (see the module docstring)."""
    text = text or ""
    cut = len(text) > MAX_TEXT_CHARS
    text = text[:MAX_TEXT_CHARS]
    blocks = list(_between(text, OPEN, CLOSE, unclosed=True))
    found: list[tuple[str, Any]] = []
    if blocks:
        for block in blocks:
            found.extend(_xml_calls(block) if "<function=" in block else _json_calls(block))
    else:
        fenced = list(_between(text, FENCE, FENCE, unclosed=False))
        for block in fenced or [text]:
            found.extend(_json_calls(_strip_language(block) if fenced else block))
    calls = tuple(
        ToolCall(id=f"text_call_{i}", name=name, arguments=_arguments(args))
        for i, (name, args) in enumerate(found[:MAX_TEXT_CALLS])
    )
    return TextCalls(calls, max(0, len(found) - MAX_TEXT_CALLS), cut)


def _between(text: str, start: str, end: str, *, unclosed: bool) -> Iterator[str]:
    """The texts between ``start`` and ``end`` markers, in order (one pass)."""
    pos = 0
    while True:
        i = text.find(start, pos)
        if i < 0:
            return
        j = text.find(end, i + len(start))
        if j < 0:
            if unclosed:
                yield text[i + len(start) :]
            return
        yield text[i + len(start) : j]
        pos = j + len(end)


def _strip_language(block: str) -> str:
    """A fenced block without its language tag (```json)."""
    first, newline, rest = block.partition("\n")
    return rest if newline and (not first.strip() or first.strip().isidentifier()) else block


def _spans(text: str) -> Iterator[str]:
    """Every top-level ``{...}`` or ``[...]`` span of ``text``, with strings respected (one pass)."""
    depth, start, in_string, escaped = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]
        elif ch == '"' and depth:
            in_string = True


def _json_calls(block: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for span in _spans(block):
        try:
            check_bounds(span, max_chars=MAX_TEXT_CHARS)  # nesting: RecursionError otherwise
            value = json.loads(span)
        except ValueError:  # not JSON, or past tools.safe_json.MAX_DEPTH
            continue
        for item in value if isinstance(value, list) else [value]:
            call = _as_call(item)
            if call is not None:
                out.append(call)
    return out


def _as_call(value: Any) -> tuple[str, Any] | None:
    """``(name, arguments)`` of a JSON value that names a tool, else ``None``."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = next((value[k] for k in NAME_KEYS if isinstance(value.get(k), str)), None)
    if not name:
        return None
    args: Any = next((value[k] for k in ARG_KEYS if k in value), {})
    return name, args


def _xml_calls(block: str) -> list[tuple[str, Any]]:
    """Qwen3-Coder's ``<function=NAME><parameter=KEY>VALUE</parameter>...</function>``."""
    out: list[tuple[str, Any]] = []
    for body in _between(block, "<function=", "</function>", unclosed=True):
        name, _, params = body.partition(">")
        args: dict[str, Any] = {}
        for param in _between(params, "<parameter=", "</parameter>", unclosed=False):
            key, _, raw = param.partition(">")
            try:
                check_bounds(raw, max_chars=MAX_TEXT_CHARS)
                args[key.strip()] = json.loads(raw.strip())
            except ValueError:  # not JSON (or nested past the bound): the text as written
                args[key.strip()] = raw.strip()
        if name.strip():
            out.append((name.strip(), args))
    return out


def _arguments(args: Any) -> str:
    """Arguments as the JSON string a native call carries (a string is kept as written)."""
    return args if isinstance(args, str) else json.dumps(args)
