"""What a VLM call returns: the reply, the function calls it asks for, the typed error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.reasoning import message_reasoning, output_tokens, reasoning_tokens, split_reasoning
from agent.vlm_config import VLMConfig, price_usd
from tools.errors import VLMError
from tools.safe_json import JSONLimitError, check_bounds

MAX_ARGUMENT_CHARS = 8_000  # a tool call's arguments; the agent's tools need a few hundred
MAX_NAME_CHARS = 64  # OpenAI's own limit on function names


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker giving its length."""
    return text if len(text) <= limit else f"{text[:limit]}…[truncated: {len(text)} chars]"


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON string (a server
    that sent a JSON object instead has it re-encoded)."""

    id: str
    name: str
    arguments: str

    @property
    def short_name(self) -> str:
        """The name, cut to a length fit for messages and traces."""
        return shorten(self.name, MAX_NAME_CHARS)

    def parse_arguments(self) -> dict[str, Any]:
        """The arguments as a dict.

        Raises:
            ValueError: not a JSON object, longer than :data:`MAX_ARGUMENT_CHARS`, or nested
                deeper than :data:`tools.safe_json.MAX_DEPTH`; the message is fit to send back
                to the model.
        """
        if len(self.arguments) > MAX_ARGUMENT_CHARS:
            raise ValueError(
                f"arguments of {self.short_name!r} are {len(self.arguments)} characters long; "
                f"at most {MAX_ARGUMENT_CHARS} are accepted"
            )
        text = self.arguments.strip() or "{}"
        try:
            check_bounds(text, max_chars=MAX_ARGUMENT_CHARS, what=f"arguments of {self.short_name!r}")
            value = json.loads(text)
        except JSONLimitError as exc:  # 3,000 brackets fit in 6 KB: refused before parsing
            raise ValueError(f"{exc}; send a flat JSON object") from None
        except ValueError as exc:
            raise ValueError(f"arguments of {self.short_name!r} are not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(
                f"arguments of {self.short_name!r} must be a JSON object, got {type(value).__name__}"
            )
        return value

    def to_message(self) -> dict[str, Any]:
        """The ``tool_calls`` entry of an assistant message, as it is sent back to the model:
        an over-long name or arguments are cut (they were refused; echoing them whole would
        only grow every later request)."""
        arguments = self.arguments
        if len(arguments) > MAX_ARGUMENT_CHARS:
            arguments = json.dumps({"truncated": f"{len(arguments)} characters"})
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.short_name, "arguments": arguments},
        }


@dataclass(frozen=True)
class VLMReply:
    """One completed chat call.

    Attributes:
        content: the assistant text (``""`` when there is none), without its reasoning.
        tool_calls: function calls requested, in order.
        finish_reason: as the server said it (``stop``, ``tool_calls``, ``length``, or odd).
        tokens_in, tokens_out: usage reported by the server (0 when missing); ``tokens_out``
            includes the reasoning tokens (see :func:`agent.reasoning.output_tokens`).
        usd: priced from the config's table (0 for unknown models).
        latency_s: seconds of the successful attempt.
        attempts: attempts it took (1 = no retry).
        model: the model that answered.
        reasoning: ``<think>`` blocks and the ``reasoning_content`` / ``reasoning`` field
            (kept for the transcript, never parsed, never sent back to the model).
        reasoning_tokens: ``completion_tokens_details.reasoning_tokens`` (0 when not reported).
        dropped: optional request features the server refused, so the reply came without
            them (``json_schema``, ``tools``; see :mod:`agent.vlm_features`).
        wait_s: seconds the call waited rather than asked: for the endpoint's limits
            (:mod:`agent.vlm_limits`, a 429's ``Retry-After`` pause included) and in the pauses
            between its retries; not part of ``latency_s``.
    """

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 1
    model: str = ""
    reasoning: str = ""
    reasoning_tokens: int = 0
    dropped: tuple[str, ...] = ()
    wait_s: float = 0.0

    def transcript_message(self) -> dict[str, Any]:
        """:meth:`assistant_message` with the reasoning, for the transcript only."""
        msg = self.assistant_message()
        if self.reasoning:
            msg["reasoning"] = self.reasoning
        return msg

    def assistant_message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation (its text cut at
        :data:`MAX_ARGUMENT_CHARS`: a runaway reply is not sent back whole)."""
        content = shorten(self.content, MAX_ARGUMENT_CHARS) if self.content else None
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_message() for c in self.tool_calls]
        return msg


class VLMCallError(VLMError):
    """A VLM call that failed; ``status`` is the HTTP status when there was one, ``kind`` a
    short class of the failure."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        retryable: bool = False,
        kind: str = "vlm_error",
    ):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        self.kind = kind  # http_<status>, timeout, connection, malformed: for fallback tallies
        self.wait_s = 0.0  # waited for the endpoint's limits and between retries (VLMReply.wait_s)


class BadResponse(Exception):
    """A 200 response the client cannot use (no choices, nested too deeply); ``retryable``
    says whether asking again may help, ``kind`` classes it for the fallback tallies."""

    retryable = True
    kind = "malformed"


class NotJSONReply(BadResponse):
    """A 200 response whose body is not JSON (an HTML page, plain text): not an API at all."""

    retryable = False  # a web page, not an API: asking again will not help
    kind = "not_json"

    def __init__(self, content_type: str):
        super().__init__(
            f"not an OpenAI-compatible JSON reply ({content_type.split(';')[0].strip()}); "
            "check --vlm-base-url (it should end in /v1)"
        )


def parse_response(
    response: Any, config: VLMConfig, latency: float, attempt: int
) -> tuple[VLMReply, str | None]:
    """The SDK's chat completion as a :class:`VLMReply`, priced from ``config``; and a note
    when the model has no price (its USD cost is then 0).

    Raises:
        BadResponse: the response has no choices.
    """
    choices = getattr(response, "choices", None)
    if not choices:
        raise BadResponse("the response has no choices")
    choice = choices[0]
    message = choice.message
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = output_tokens(usage)
    model = getattr(response, "model", None) or config.model
    usd, note = price_usd(config.model, tokens_in, tokens_out, config.prices)
    content, thought = split_reasoning(message.content if isinstance(message.content, str) else "")
    reasoning = "\n".join(t for t in (message_reasoning(message), thought) if t)
    reply = VLMReply(
        content=content,
        tool_calls=_tool_calls(message),
        finish_reason=str(choice.finish_reason or ""),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        usd=usd,
        latency_s=latency,
        attempts=attempt,
        model=str(model),
        reasoning=reasoning,
        reasoning_tokens=reasoning_tokens(usage),
    )
    return reply, note


def _tool_calls(message: Any) -> tuple[ToolCall, ...]:
    calls = []
    for i, tc in enumerate(message.tool_calls or ()):
        fn = getattr(tc, "function", None) or getattr(tc, "custom", None)
        name = getattr(fn, "name", "") or ""
        args = getattr(fn, "arguments", None)
        if args is None:
            args = getattr(fn, "input", "")
        if isinstance(args, dict | list):  # some servers send the arguments as a JSON object
            args = json.dumps(args)
        calls.append(ToolCall(id=tc.id or f"call_{i}", name=str(name), arguments=str(args or "")))
    return tuple(calls)
