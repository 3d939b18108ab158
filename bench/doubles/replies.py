"""What the scripted server answers: reply specs, and the OpenAI JSON they turn into."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_SLEEP_S = 30.0


@dataclass(frozen=True)
class Text:
    """A plain assistant message."""

    content: str
    finish_reason: str = "stop"
    prompt_tokens: int = 100
    completion_tokens: int = 20


@dataclass(frozen=True)
class Call:
    """One tool call: ``arguments`` is a dict (JSON-encoded) or a raw string sent as is."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message requesting one or several tool calls."""

    calls: tuple[Call, ...]
    content: str | None = None
    finish_reason: str = "tool_calls"
    prompt_tokens: int = 150
    completion_tokens: int = 30

    @classmethod
    def of(cls, *calls: Call | tuple[str, dict[str, Any] | str], **kw: Any) -> ToolCalls:
        """``ToolCalls.of(("rank", {"query": "dog"}), Call("submit"))``."""
        return cls(tuple(c if isinstance(c, Call) else Call(*c) for c in calls), **kw)


@dataclass(frozen=True)
class Status:
    """An error status with an OpenAI-style error body (``retry_after`` sets the header)."""

    code: int
    message: str = "scripted error"
    retry_after: float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """Sleep ``seconds`` (capped, interrupted when the server stops), then answer ``then``."""

    seconds: float
    then: Spec | None = None


@dataclass(frozen=True)
class Reset:
    """Close the connection abruptly (TCP RST) without sending any response."""


@dataclass(frozen=True)
class Truncated:
    """A 200 whose JSON body is cut after ``keep`` of its bytes.

    ``short_read=False``: a complete HTTP response carrying invalid JSON.
    ``short_read=True``: ``Content-Length`` promises the full body, then the socket closes.
    """

    spec: Text | ToolCalls = field(default_factory=lambda: Text("cut"))
    keep: float = 0.5
    short_read: bool = False


@dataclass(frozen=True)
class EmptyChoices:
    """A well-formed completion with ``choices: []``."""


@dataclass(frozen=True)
class Raw:
    """Any status, body and headers, verbatim."""

    status: int
    body: bytes | str | dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Spec = Text | ToolCalls | Status | Slow | Reset | Truncated | EmptyChoices | Raw
Policy = Callable[[dict[str, Any]], Spec]


def endless_tool_calls(name: str = "rank", arguments: dict[str, Any] | str | None = None) -> Policy:
    """A policy that answers every request with the same tool call, forever."""
    args = arguments if arguments is not None else {"query": "again"}
    return lambda _request: ToolCalls.of((name, args))


def completion_json(spec: Text | ToolCalls, n: int = 1, model: str = "scripted-model") -> dict[str, Any]:
    """The OpenAI ``chat.completion`` object for a text or tool-call spec."""
    message: dict[str, Any] = {"role": "assistant"}
    if isinstance(spec, Text):
        message["content"] = spec.content
    else:
        message["content"] = spec.content
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{n}_{i}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments),
                },
            }
            for i, call in enumerate(spec.calls)
        ]
    return {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": spec.finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": spec.prompt_tokens,
            "completion_tokens": spec.completion_tokens,
            "total_tokens": spec.prompt_tokens + spec.completion_tokens,
        },
    }


def request_texts(request: dict[str, Any]) -> list[str]:
    """The text parts of a chat request's messages, in order (what scripted policies read)."""
    out: list[str] = []
    for msg in request.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return out
