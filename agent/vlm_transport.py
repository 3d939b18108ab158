"""One chat-completion request through the ``openai`` client, with as little Python per call as
the client allows.

``client.chat.completions.create`` first walks the whole request through the SDK's type-driven
transform (every message part and tool schema, ~2 ms for an agent turn with its tools), which
changes nothing for the fields a chat completion sends. The request goes instead through the
client's own ``post`` (the SDK's way to call any endpoint: the same auth, base URL, query
parameters, headers, timeouts and HTTP connection pool, and the same ``APIStatusError`` /
``APITimeoutError`` / ``APIConnectionError`` on failures), and the body it returns is read into
the SDK's :class:`~openai.types.chat.ChatCompletion` the way the SDK reads it (lenient, nested:
``ChatCompletion.construct``), once its nesting is checked in linear time
(:func:`tools.safe_json.check_bounds`; the HTTP client bounds its size while reading it,
:func:`agent.vlm_body.capped_http_client`). A large body is decoded in a worker thread, so
other episodes keep running meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import httpx2
import openai
from openai.types.chat import ChatCompletion

from agent.vlm_body import MAX_RESPONSE_BYTES
from agent.vlm_reply import BadResponse, NotJSONReply
from tools.safe_json import MAX_DEPTH, JSONLimitError, check_bounds

THREAD_DECODE_BYTES = 256 * 2**10  # decode bodies above this off the event loop


async def post_chat(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[dict[str, Any]],
    timeout_s: float,
    kw: dict[str, Any],
) -> ChatCompletion:
    """POST ``/chat/completions`` with ``model``, ``messages`` and ``kw`` (tools, tool_choice,
    response_format, temperature...) as the JSON body; the reply as a ``ChatCompletion``.

    Raises:
        openai.APIStatusError, openai.APITimeoutError, openai.APIConnectionError: as ``create``.
        NotJSONReply: a 2xx answer that is not JSON (a web page: the base URL is not an API).
        BadResponse: JSON that is not a chat completion object, or nested too deeply.
        ValueError: a JSON body that does not parse (a cut reply).
    """
    body = {"model": model, "messages": messages, **kw}
    response: httpx2.Response = await client.post(
        "/chat/completions", body=body, cast_to=httpx2.Response, options={"timeout": timeout_s}
    )
    content_type = str(response.headers.get("content-type") or "no content type")
    if "json" not in content_type.split(";")[0].lower():
        raise NotJSONReply(content_type)
    content = response.content  # bounded while it was read (agent.vlm_body.capped_http_client)
    try:
        check_bounds(content, max_chars=MAX_RESPONSE_BYTES, max_depth=MAX_DEPTH, what="the response body")
    except JSONLimitError as exc:
        raise BadResponse(str(exc)) from None
    if len(content) > THREAD_DECODE_BYTES:
        data = await anyio.to_thread.run_sync(json.loads, content)
    else:
        data = json.loads(content)
    if not isinstance(data, dict):
        raise BadResponse(f"the reply is a JSON {type(data).__name__}, not a chat completion object")
    return ChatCompletion.construct(**data)


__all__ = ["THREAD_DECODE_BYTES", "post_chat"]
