"""How an agent episode offers its tools and reads the calls: ``--vlm-tool-calls``.

- ``native``: the tools go as OpenAI function schemas; calls are the reply's ``tool_calls``;
  results go back as ``tool`` messages.
- ``text``: no ``tools`` are sent; the system prompt describes them and the call format
  (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``); calls are parsed from the
  reply's text (:mod:`agent.text_tool_calls`) and results go back in one user message of
  ``<tool_response>`` blocks.
- ``auto``: both: the schemas are sent (and dropped for good if the server refuses them, see
  :mod:`agent.vlm_features`) and the prompt describes the text form too; a reply's native
  calls are used when it has any, else its text calls. Which style each reply used is
  counted (``styles``) and traced on every ``turn`` event.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from agent.submit import SUBMIT
from agent.text_tool_calls import parse_text_tool_calls
from agent.vlm_reply import ToolCall, VLMReply

TEXT_FORMAT = (
    "You call a tool by writing a block\n"
    '<tool_call>{{"name": "<tool name>", "arguments": {{<its arguments>}}}}</tool_call>\n'
    "one block per call (several blocks for several calls); each result comes back in a "
    "<tool_response> block. {when}The tools, with their arguments as JSON schema:\n{tools}"
)
AUTO_WHEN = "Use this form when you cannot call the functions directly. "
TEXT_NUDGE = (
    "Call a tool or submit: reply with a <tool_call>...</tool_call> block (for example the "
    f"ranker, or {SUBMIT} with the index of the candidate that matches the expression)."
)


def describe_tools(schemas: list[dict[str, Any]]) -> str:
    """One line per tool: name, description and compact argument schema."""
    lines = []
    for schema in schemas:
        fn = schema.get("function", {})
        params = json.dumps(fn.get("parameters", {}), separators=(",", ":"))
        lines.append(f"- {fn.get('name')}: {fn.get('description', '')} Arguments: {params}")
    return "\n".join(lines)


class CallStyle:
    """One episode's tool-call style (see the module docstring).

    Args:
        mode: ``native``, ``text`` or ``auto``.
        schemas: the OpenAI function schemas of the tools on offer.
    """

    def __init__(self, mode: str, schemas: list[dict[str, Any]]):
        self.mode = mode
        self.schemas = schemas
        self.styles: Counter[str] = Counter()  # replies whose calls were native / text / none

    def system_text(self) -> str:
        """What the system prompt adds: the tools and the text call format (none for native)."""
        if self.mode == "native":
            return ""
        when = AUTO_WHEN if self.mode == "auto" else ""
        return "\n" + TEXT_FORMAT.format(when=when, tools=describe_tools(self.schemas))

    def request(self) -> dict[str, Any]:
        """The ``complete`` arguments that offer the tools."""
        if self.mode == "text":
            return {}
        extra: dict[str, Any] = {"tools": self.schemas, "tool_choice": "auto"}
        if self.mode == "auto":
            extra["tools_optional"] = True
        return extra

    def read(self, reply: VLMReply) -> tuple[tuple[ToolCall, ...], str]:
        """The reply's calls and their style (``native``, ``text`` or ``none``), counted."""
        calls: tuple[ToolCall, ...] = ()
        style = "none"
        if self.mode != "text" and reply.tool_calls:
            calls, style = reply.tool_calls, "native"
        elif self.mode != "native":
            parsed = parse_text_tool_calls(reply.content).calls
            if parsed:
                calls, style = parsed, "text"
        self.styles[style] += 1
        return calls, style

    def answers(self, style: str, calls: tuple[ToolCall, ...], contents: list[str]) -> list[dict[str, Any]]:
        """The messages that carry the calls' results back, in the style they were made in."""
        if style == "native":
            return [
                {"role": "tool", "tool_call_id": call.id, "content": content}
                for call, content in zip(calls, contents, strict=True)
            ]
        blocks = [
            f'<tool_response>\n{{"name": {json.dumps(call.short_name)}, "content": {content}}}\n'
            "</tool_response>"
            for call, content in zip(calls, contents, strict=True)
        ]
        return [{"role": "user", "content": "\n".join(blocks)}]

    def nudge(self, native_nudge: str) -> str:
        """What to say to a reply without any call."""
        return TEXT_NUDGE if self.mode == "text" else native_nudge
