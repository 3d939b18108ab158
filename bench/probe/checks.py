"""The probe's requests, one method each; every one bounded in time and counted.

At most :data:`MAX_REQUESTS` chat requests (no retries: a failure is reported, not hidden)
and one ``GET /models``, each with a timeout that fits the probe's deadline; a check that
would start with less than :data:`MIN_LEFT_S` left is skipped and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import openai

from agent.call_styles import TEXT_FORMAT, describe_tools
from agent.ground_controller import parse_ground_answer
from agent.text_tool_calls import parse_text_tool_calls
from agent.vlm import VLMClient, VLMConfig, VLMReply
from agent.vlm_reply import VLMCallError
from bench.probe.fit import Answer
from bench.probe.images import ProbeImage
from tools import safe_json
from tools.coords import Frame
from tools.errors import ToolError
from tools.json_reply import MAX_REPLY_CHARS
from tools.render import image_data_url

MAX_REQUESTS = 10
MIN_LEFT_S = 2.0
COLOUR_QUESTION = "What colour is the shape in this image? Reply with one word."
LOCATE = "Locate the {colour} rectangle in this image and output its bounding box coordinates in JSON format."
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city's name"}},
            "required": ["city"],
        },
    },
}
TOOL_ASK = 'Call the function get_weather with the arguments {"city": "Paris"}.'
SCHEMA = {
    "name": "probe_answer",
    "schema": {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    },
}


@dataclass
class Outcome:
    """One check: whether it worked, the reply it got (or why not), and what it measured."""

    ok: bool
    reply: VLMReply | None = None
    error: str | None = None
    status: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, **self.facts}
        if self.reply is not None:
            out |= {"latency_s": round(self.reply.latency_s, 3), "tokens_in": self.reply.tokens_in}
            out |= {"tokens_out": self.reply.tokens_out, "content": self.reply.content[:200]}
        if self.error:
            out |= {"error": self.error, "status": self.status}
        return out


class Prober:
    """Sends the probe's requests to one endpoint (see the module docstring).

    Args:
        config: the endpoint, model and key (its retries are turned off here).
        deadline_s: seconds the whole probe may take.
    """

    def __init__(self, config: VLMConfig, deadline_s: float):
        self.deadline = time.monotonic() + deadline_s
        self.config = config.with_(max_retries=0)
        self.schema_config = self.config.with_(profile=replace(self.config.profile, json_schema=True))
        self.skipped: list[str] = []  # checks not made: out of time
        self.requests = 0  # chat requests sent

    def use_model(self, model: str) -> None:
        """Ask ``model`` from now on (the one the endpoint lists, when none was given)."""
        self.config = self.config.with_(model=model)
        self.schema_config = self.schema_config.with_(model=model)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def models(self) -> list[str] | None:
        """The model ids ``GET /models`` lists (``None`` when the endpoint has no such list)."""
        base_url, query = self.config.request_url()
        client = openai.AsyncOpenAI(
            api_key=self.config.api_key,
            base_url=base_url,
            default_query=query or None,
            timeout=max(1.0, min(10.0, self.left())),
            max_retries=0,
        )
        try:
            page = await client.models.list()
            return [str(m.id) for m in page.data][:50]
        except (openai.OpenAIError, ValueError):
            return None
        finally:
            await client.close()

    async def ask(
        self, name: str, messages: list[dict[str, Any]], schema: bool = False, **kw: Any
    ) -> Outcome:
        """One request (``schema``: with ``response_format``); a failure is an outcome, not an error."""
        if self.left() < MIN_LEFT_S:
            self.skipped.append(name)
            return Outcome(False, error="not checked: out of time")
        config = self.schema_config if schema else self.config
        client = VLMClient(config.with_(timeout_s=max(1.0, min(20.0, self.left()))))
        try:
            reply = await client.complete(messages, temperature=0.0, max_tokens=512, **kw)
        except VLMCallError as exc:
            return Outcome(False, error=str(exc), status=exc.status, facts={"kind": exc.kind})
        finally:
            self.requests += client.attempts
            await client.aclose()
        return Outcome(True, reply)

    async def text(self) -> Outcome:
        """A text-only request (the same words as the image request, for tokens per image)."""
        return await self.ask("text", [{"role": "user", "content": COLOUR_QUESTION}])

    async def colour(self, image: ProbeImage) -> Outcome:
        """The picture and a question only a model that sees it answers: the shape's colour."""
        out = await self.ask("image", [_with_image(image, COLOUR_QUESTION)])
        if out.reply is not None:
            out.facts["named_colour"] = image.colour in out.reply.content.lower()
        return out

    async def locate(self, image: ProbeImage) -> tuple[Outcome, Answer]:
        """The object's box, asked for without naming any convention; the numbers as given."""
        out = await self.ask("locate", [_with_image(image, LOCATE.format(colour=image.colour))])
        numbers = _numbers(out.reply.content) if out.reply is not None else None
        out.facts |= {"size": list(image.size), "truth": list(image.box), "numbers": numbers}
        frame = Frame(*image.size)
        return out, Answer(tuple(numbers) if numbers else None, frame, tuple(map(float, image.box)))  # type: ignore[arg-type]

    async def native_tools(self) -> Outcome:
        """A function-calling request: does the server return ``tool_calls``?"""
        out = await self.ask(
            "native_tools", [{"role": "user", "content": TOOL_ASK}], tools=[TOOL], tool_choice="auto"
        )
        calls = out.reply.tool_calls if out.reply is not None else ()
        out.facts["called"] = any(c.name == "get_weather" and "Paris" in c.arguments for c in calls)
        return out

    async def text_tools(self) -> Outcome:
        """The tool described in the prompt: does a call written as text parse?"""
        system = TEXT_FORMAT.format(when="", tools=describe_tools([TOOL]))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": TOOL_ASK}]
        out = await self.ask("text_tools", messages)
        calls = parse_text_tool_calls(out.reply.content).calls if out.reply is not None else ()
        out.facts["called"] = any(c.name == "get_weather" and "Paris" in c.arguments for c in calls)
        return out

    async def json_schema(self) -> Outcome:
        """``response_format`` with a JSON schema: taken, or refused (then asked without, once)."""
        ask = 'Reply with JSON: {"answer": "ready"}'
        out = await self.ask(
            "json_schema", [{"role": "user", "content": ask}], schema=True, json_schema=SCHEMA
        )
        if out.reply is not None:
            out.facts["refused"] = "json_schema" in out.reply.dropped
            out.facts["valid"] = _is_answer_object(out.reply.content)
        return out


def _with_image(image: ProbeImage, text: str) -> dict[str, Any]:
    url = image_data_url(image.pixels, max_side=max(image.size), quality=95)
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }


def _numbers(text: str) -> list[float] | None:
    """The box (or point) a reply gives, in the order given (``None`` when it holds none)."""
    try:
        args = parse_ground_answer(text)
    except ToolError:
        return None
    if not args:
        return None
    value = args.get("box") or (args.get("points") or [None])[0]
    try:
        numbers = [float(v) for v in value or []]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) in (2, 4) else None


def _is_answer_object(text: str) -> bool:
    try:  # bounded: an endpoint under probe may answer anything (nesting: RecursionError)
        value = safe_json.loads(text, max_chars=MAX_REPLY_CHARS, what="the answer")
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("answer"), str)
