"""The VLM client's response bodies, bounded while they are read and before they are parsed.

A server (or anything at ``--vlm-base-url``) decides how much it sends. The SDK would read any
body whole and parse it on the event loop; here the body is cut off once it passes
:data:`MAX_RESPONSE_BYTES` (counted as it arrives, compressed bodies asked away with
``Accept-Encoding: identity`` and refused if sent anyway, since their size says nothing about
what they inflate to); :mod:`agent.vlm_transport` checks its nesting in linear time before
it is parsed, and parses a large body in a worker thread so other episodes keep running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from agent.vlm_reply import BadResponse

MAX_RESPONSE_BYTES = 16 * 2**20  # a chat completion of the longest reply a model sends is < 1 MiB


class OversizedResponse(BadResponse):
    """A response body over :data:`MAX_RESPONSE_BYTES`, or compressed against the request."""

    retryable = False
    kind = "oversized"


class _CappedStream(httpx2.AsyncByteStream):
    """The response's byte stream, stopped with :class:`OversizedResponse` past ``limit``."""

    def __init__(self, inner: Any, limit: int):
        self.inner, self.limit, self.seen = inner, limit, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.seen += len(chunk)
            if self.seen > self.limit:
                raise OversizedResponse(
                    f"the response body passed {self.limit:,} bytes; it was cut off there"
                )
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _cap_body(response: httpx2.Response) -> None:
    """Response hook (headers read, body not yet): refuse what cannot be bounded, count the rest."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise OversizedResponse(f"the response body is {int(declared):,} bytes, over {MAX_RESPONSE_BYTES:,}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise OversizedResponse(f"the response is {encoding}-compressed although identity was asked for")
    response.stream = _CappedStream(response.stream, MAX_RESPONSE_BYTES)


def capped_http_client() -> httpx2.AsyncClient:
    """The SDK's default HTTP client (its timeouts, limits, redirects) with bounded bodies."""
    return openai.DefaultAsyncHttpxClient(
        event_hooks={"response": [_cap_body]}, headers={"accept-encoding": "identity"}
    )
