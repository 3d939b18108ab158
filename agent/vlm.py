"""The VLM client: any OpenAI-compatible chat endpoint, with traced retries and token pricing.

Default endpoint is SiliconFlow with ``Qwen/Qwen2.5-VL-72B-Instruct``; the key comes from
``SILICONFLOW_API_KEY`` or ``REFSEG_VLM_API_KEY``. A local server (vLLM, llama.cpp, the
test server) needs only a base URL.

The SDK's own retries are off (``max_retries=0``): :class:`VLMClient` retries itself so
every attempt reaches the ``on_call`` hook (one trace event per attempt) and
``Retry-After`` is honoured exactly. Retried: 408, 409, 429, 5xx, timeouts, connection
errors and unparseable response bodies. Any other 4xx fails at once, and so does a 200 whose
body is not JSON (an HTML page: the base URL points at a web site, not an API). 401, 403 and
"no such model" (404, or a 400 that says so) raise :class:`tools.errors.VLMAuthError`, which
stops a run: no call could succeed. Its one line names the endpoint's host and what to fix.

A query string in the base URL (``...?api_key=K``) is sent as request parameters, so the
request goes to ``.../chat/completions?api_key=K``; user information (``user:pass@``) is sent
as Basic credentials by the HTTP client.

The API key never appears in a repr, an exception message or an ``on_call`` event, and
neither do credentials in the base URL or a ``Basic`` header a server echoes back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import anyio.to_thread
import openai

from agent.redaction import redact_text, url_secrets
from agent.vlm_body import capped_http_client
from agent.vlm_config import DEFAULT_BASE_URL, DEFAULT_MODEL, DEFAULT_PRICES, Price, VLMConfig, price_usd
from agent.vlm_features import NATIVE_TOOLS_FIX, Features, Plan, is_refusal
from agent.vlm_http import BEARER, Failure, auth_fix, classify, host_of, one_line
from agent.vlm_limits import Limiter, Slot, hold
from agent.vlm_reply import (
    BadResponse,
    ToolCall,
    VLMCallError,
    VLMReply,
    parse_response,
)
from agent.vlm_transport import post_chat
from tools.device import book_wait
from tools.errors import VLMAuthError, VLMError

# The client's public surface; configuration and reply types live in agent.vlm_config and
# agent.vlm_reply.
__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "Price",
    "ToolCall",
    "VLMCallError",
    "VLMClient",
    "VLMConfig",
    "VLMReply",
    "price_usd",
]

log = logging.getLogger(__name__)

OnCall = Callable[[dict[str, Any]], None]


class VLMClient:
    """Async chat client over ``openai.AsyncOpenAI`` with retries, pricing and counters.

    Args:
        config: endpoint, model, key, timeouts, retries and prices.
        on_call: called after every attempt with a dict: ``model``, ``attempt``,
            ``latency_s``, ``tokens_in``, ``tokens_out``, ``usd``, ``finish_reason``,
            ``tool_calls`` (names), ``status``, ``error`` (one line or None),
            ``retry_in_s`` (the wait before the next attempt, or None), ``messages`` (the
            request's messages, as sent) and ``reply_message`` (the reply as an assistant
            message, or None): :func:`agent.transcript.log_vlm_call` logs the last two.

    Raises:
        VLMError: the config has no key (see :meth:`VLMConfig.vlm_unavailable_reason`).

    Counters: ``calls`` (completed calls), ``attempts``, ``failures`` (calls that raised),
    ``tokens_in``, ``tokens_out``, ``usd``.
    """

    def __init__(self, config: VLMConfig, on_call: OnCall | None = None, limiter: Limiter | None = None):
        reason = config.vlm_unavailable_reason()
        if reason:
            raise VLMError(reason)
        self.config = config
        self.on_call = on_call
        # The endpoint's limits; a Ray worker swaps in the proxy of the run's one limiter actor.
        self.limiter = limiter if limiter is not None else config.limits.limiter()
        # The key and any credentials inside the base URL (user, password, query values).
        secrets = [config.api_key or "", *url_secrets(config.base_url)]
        self._secrets = sorted((v for v in secrets if v), key=len, reverse=True)
        # The SDK's connection pool belongs to the event loop it first ran on, and a bench
        # suite runs several loops in turn: keep one SDK client per running loop.
        # Keyed weakly by the loop object itself: an id() can be reused by a later loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self.calls = 0
        self.attempts = 0
        self.failures = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.reasoning_tokens = 0
        self.usd = 0.0
        self.features = Features(config.profile)  # what the server refused, once seen
        self.price_note: str | None = None

    @property
    def model(self) -> str:
        return self.config.model

    def __repr__(self) -> str:
        return f"VLMClient({self.config!r}, calls={self.calls}, usd={self.usd:.6f})"

    @property
    def _client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client()
        return client

    def _new_client(self) -> openai.AsyncOpenAI:
        base_url, query = self.config.request_url()
        return openai.AsyncOpenAI(
            api_key=self.config.api_key,
            base_url=base_url,
            default_query=query or None,
            timeout=self.config.timeout_s,
            max_retries=0,
            http_client=capped_http_client(),
        )

    async def prepare(self) -> None:
        """Make this loop's SDK client now, in a thread (its TLS set-up takes ~0.3 s)."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = await anyio.to_thread.run_sync(self._new_client)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def __aenter__(self) -> VLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def counters(self) -> dict[str, Any]:
        """Totals so far: calls, attempts, failures, tokens and USD."""
        return {
            "calls": self.calls,
            "attempts": self.attempts,
            "failures": self.failures,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "reasoning_tokens": self.reasoning_tokens,
            "usd": self.usd,
        }

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        json_schema: dict[str, Any] | None = None,
        tools_optional: bool = False,
        **kw: Any,
    ) -> VLMReply:
        """One chat completion, retried on transient failures.

        Args:
            messages: OpenAI chat messages (image parts as data URLs).
            tools: OpenAI function-calling tool schemas.
            tool_choice: ``auto``, ``none``, ``required`` or a named function.
            json_schema: ``{"name", "schema"}`` for ``response_format``, sent when the profile
                asks for JSON schemas (``--vlm-json-schema``); optional (see
                :mod:`agent.vlm_features`).
            tools_optional: a server that refuses ``tools`` is asked again without them
                (``--vlm-tool-calls auto``: the prompt describes the tools as well).
            **kw: passed to ``chat.completions.create`` (``temperature``, ``max_tokens``...).

        Raises:
            VLMCallError: a non-retryable error, or retries exhausted (one-line message).
        """
        plan = self.features.plan(tools, tool_choice, json_schema, tools_optional)
        dropped = self.features.dropped(bool(tools) and tools_optional, json_schema is not None)
        try:
            return await self._complete(messages, {**kw, **plan.kw}, dropped)
        except VLMCallError as exc:
            if not (plan.optional and is_refusal(exc.status, str(exc))):
                raise self._failed(exc, plan) from None
            refusal, waited = one_line(str(exc), 200), exc.wait_s
        try:
            reply = await self._complete(
                messages, {**kw, **plan.without_optional()}, (*dropped, *plan.optional)
            )
        except VLMCallError as exc:
            exc.wait_s += waited
            raise self._failed(exc, plan) from None
        self.features.mark_refused(plan.optional, refusal)
        return replace(reply, wait_s=reply.wait_s + waited)  # the refused request's waits too

    def _failed(self, exc: VLMCallError, plan: Plan) -> VLMCallError:
        """Count a call that failed; a refusal of native tool calls says how to turn them on."""
        self.failures += 1
        if plan.native_tools and is_refusal(exc.status, str(exc)):
            error = VLMCallError(f"{exc}; {NATIVE_TOOLS_FIX}", status=exc.status, kind=exc.kind)
            error.wait_s = exc.wait_s
            return error
        return exc

    async def _complete(
        self, messages: list[dict[str, Any]], kw: dict[str, Any], dropped: tuple[str, ...]
    ) -> VLMReply:
        """The request with its retries; ``dropped`` is recorded on the reply."""
        total = self.config.max_retries + 1
        last: Failure | None = None
        waited = 0.0  # held back by the endpoint's limits and the retries' sleeps, all attempts
        for attempt in range(1, total + 1):
            self.attempts += 1
            async with hold(self.limiter, messages, kw) as slot:
                t0 = time.monotonic()
                reply, failure = await self._attempt(messages, kw, attempt)
                latency = time.monotonic() - t0
                self._settle(slot, reply, failure)
            waited += slot.waited_s
            if reply is not None:
                reply = replace(reply, dropped=dropped, wait_s=waited)
                self._account(reply)
                self._emit(attempt, latency, messages, reply=reply)
                return reply
            assert failure is not None  # an attempt gives a reply or a failure
            last = failure
            delay = self._delay(failure, attempt) if failure.retryable and attempt < total else None
            self._emit(attempt, latency, messages, failure=failure, retry_in_s=delay)
            if delay is None:
                break
            waited += await self._sleep(delay)
        assert last is not None
        error = self._give_up(last, attempt)
        if isinstance(error, VLMCallError):
            error.wait_s = waited
        raise error

    # -- internals -------------------------------------------------------------------------

    def _settle(self, slot: Slot, reply: VLMReply | None, failure: Failure | None) -> None:
        """What the attempt's slot gives back to the limits: the tokens it used (a reply that
        reports none keeps the estimate), whether it reached the endpoint, and the pause a 429's
        ``Retry-After`` asks of every request (also after the last attempt)."""
        if reply is not None:
            slot.used = (reply.tokens_in + reply.tokens_out) or None
        elif failure is not None:
            slot.reached = failure.reached
            if failure.retry_after is not None:
                slot.pause_s = self._retry_after_s(failure.retry_after)

    async def _attempt(
        self, messages: list[dict[str, Any]], kw: dict[str, Any], attempt: int
    ) -> tuple[VLMReply | None, Failure | None]:
        """One request: the reply, or the classified failure."""
        cfg = self.config
        t0 = time.monotonic()
        try:
            with anyio.fail_after(cfg.timeout_s + 1.0):  # the SDK timeout is per read
                response = await post_chat(self._client, cfg.model, messages, cfg.timeout_s, kw)
            return self._reply(response, time.monotonic() - t0, attempt), None
        except (openai.OpenAIError, ValueError, TimeoutError, BadResponse) as exc:
            return None, classify(exc, cfg.timeout_s, self._line)  # anything else is a bug: let it surface

    def _give_up(self, last: Failure, attempts: int) -> VLMCallError | VLMAuthError:
        """The one-line error for a call that failed ``attempts`` times, last with ``last``:
        :class:`VLMAuthError` when no call can succeed (key rejected, no such model)."""
        fix = auth_fix(last, self.config.model)
        if fix is not None:
            host = host_of(self.config.base_url)
            self.failures += 1
            return VLMAuthError(self._redact(f"VLM at {host} answered HTTP {last.status}: {fix}"))
        where = f"{self.config.model} at {self.config.shown_url}"
        if last.retryable:
            msg = f"VLM call failed after {attempts} attempt(s) ({where}): {last.message}"
        else:
            msg = f"VLM request rejected ({where}): {last.message}"
        return VLMCallError(
            self._redact(msg),
            status=last.status,
            attempts=attempts,
            retryable=last.retryable,
            kind=last.kind,
        )

    def _reply(self, response: Any, latency: float, attempt: int) -> VLMReply:
        reply, note = parse_response(response, self.config, latency, attempt)
        if note and self.price_note is None:
            # Kept, not logged: the bench and segment commands print the same line once at
            # start-up (VLMConfig.price_note), before any call.
            self.price_note = note
        return reply

    def _delay(self, failure: Failure, attempt: int) -> float:
        cfg = self.config
        if failure.retry_after is not None:
            return self._retry_after_s(failure.retry_after)
        cap = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        return cap / 2 + random.uniform(0, cap / 2)  # equal jitter: spread, but never ~0

    @staticmethod
    async def _sleep(delay: float) -> float:
        """The pause before a retry; booked as the running tool call's wait, not its compute."""
        start = time.monotonic()
        await anyio.sleep(delay)
        slept = time.monotonic() - start
        book_wait(slept)
        return slept

    def _retry_after_s(self, retry_after: float) -> float:
        return min(max(retry_after, 0.0), self.config.retry_after_max_s)

    def _account(self, reply: VLMReply) -> None:
        self.calls += 1
        self.tokens_in += reply.tokens_in
        self.tokens_out += reply.tokens_out
        self.reasoning_tokens += reply.reasoning_tokens
        self.usd += reply.usd

    def _emit(
        self,
        attempt: int,
        latency: float,
        messages: list[dict[str, Any]],
        reply: VLMReply | None = None,
        failure: Failure | None = None,
        retry_in_s: float | None = None,
    ) -> None:
        if self.on_call is None:
            return
        event: dict[str, Any] = {
            "model": self.config.model,
            "attempt": attempt,
            "latency_s": round(latency, 4),
            "tokens_in": reply.tokens_in if reply else 0,
            "tokens_out": reply.tokens_out if reply else 0,
            "usd": reply.usd if reply else 0.0,
            "finish_reason": reply.finish_reason if reply else None,
            "tool_calls": [c.name for c in reply.tool_calls] if reply else [],
            "status": failure.status if failure else 200,
            "error": self._redact(failure.message) if failure else None,
            "retry_in_s": None if retry_in_s is None else round(retry_in_s, 4),
            "messages": messages,
            "reply_message": reply.transcript_message() if reply else None,
        }
        if reply is not None and (reply.reasoning_tokens or reply.reasoning):
            event["reasoning_tokens"] = reply.reasoning_tokens
        if reply is not None and reply.dropped:
            event["dropped"] = list(reply.dropped)
        try:
            self.on_call(event)
        except Exception:  # a broken tracer must not fail the call; it is logged, not hidden
            log.exception("VLM on_call hook failed")

    def _line(self, text: str) -> str:
        # Redact before one_line cuts the text: a key cut in half would no longer match.
        return one_line(self._redact(text))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        # A server echoing the request's Authorization header (Bearer or Basic) or the URL.
        return redact_text(BEARER.sub("[REDACTED]", text))
