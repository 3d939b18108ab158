"""The VLM client: any OpenAI-compatible chat endpoint, with traced retries and token pricing.

Default endpoint is SiliconFlow with ``Qwen/Qwen2.5-VL-72B-Instruct``; the key comes from
``SILICONFLOW_API_KEY`` or ``REFSEG_VLM_API_KEY``. A local server (vLLM, llama.cpp, the
test server) needs only a base URL.

The SDK's own retries are off (``max_retries=0``): :class:`VLMClient` retries itself so
every attempt reaches the ``on_call`` hook (one trace event per attempt) and
``Retry-After`` is honoured exactly. Retried: 408, 409, 429, 5xx, timeouts, connection
errors and unparseable response bodies. Any other 4xx fails at once.

The API key never appears in a repr, an exception message or an ``on_call`` event.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import openai

from tools.errors import ConfigError, VLMError
from tools.refine_vlm import image_data_url

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
    "image_data_url",
    "price_usd",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.siliconflow.cn/v1"
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
KEY_ENV_VARS = ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY")
BASE_URL_ENV = "REFSEG_VLM_BASE_URL"
MODEL_ENV = "REFSEG_VLM_MODEL"
LOCAL_DUMMY_KEY = "sk-local-no-key"  # the SDK insists on a key; local servers ignore it
RETRYABLE_STATUS = frozenset({408, 409, 429})


def is_siliconflow(url: str) -> bool:
    """Whether ``url`` is SiliconFlow's API (the only host SILICONFLOW_API_KEY is sent to)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("siliconflow.cn", "siliconflow.com") or host.endswith(
        (".siliconflow.cn", ".siliconflow.com")
    )


@dataclass(frozen=True)
class Price:
    """List price in USD per million tokens."""

    input_per_m: float
    output_per_m: float


# SiliconFlow list price of Qwen2.5-VL-72B-Instruct: CNY 4.13 per million tokens, input and
# output alike (siliconflow.cn model list; ~= USD 0.58 at 7.1 CNY/USD), USD 0.59 on the
# international siliconflow.com list. Prices change: override with VLMConfig(prices=...).
DEFAULT_PRICES: Mapping[str, Price] = {
    "Qwen/Qwen2.5-VL-72B-Instruct": Price(0.59, 0.59),
}


def price_usd(
    model: str, tokens_in: int, tokens_out: int, prices: Mapping[str, Price]
) -> tuple[float, str | None]:
    """USD for one call and, for a model missing from ``prices``, a note saying it is 0."""
    price = prices.get(model)
    if price is None:
        folded = {k.casefold(): v for k, v in prices.items()}
        price = folded.get(model.casefold())
    if price is None:
        return 0.0, f"no price for model {model!r}: its USD cost is counted as 0 (set VLMConfig.prices)"
    return (tokens_in * price.input_per_m + tokens_out * price.output_per_m) / 1e6, None


@dataclass(frozen=True)
class VLMConfig:
    """Where and how to call the VLM.

    Attributes:
        base_url: OpenAI-compatible endpoint (``.../v1``).
        model: model name sent with every request.
        api_key: the secret; never shown by ``repr``.
        timeout_s: per-attempt timeout (connect to last byte).
        max_retries: retries after the first attempt.
        backoff_base_s, backoff_max_s: exponential backoff ``base * 2**k`` capped, with jitter.
        retry_after_max_s: cap on a server's ``Retry-After``.
        prices: USD per million tokens by model name.
        explicit_base_url: the base URL was chosen by the user (a local server needs no key).
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    explicit_base_url: bool = False

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"VLM timeout must be > 0 seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ConfigError(f"VLM max_retries must be >= 0, got {self.max_retries}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"VLM base URL must start with http:// or https://, got {self.base_url!r}")

    def __repr__(self) -> str:
        key = "None" if not self.api_key else "'***'"
        return (
            f"VLMConfig(base_url={self.base_url!r}, model={self.model!r}, api_key={key}, "
            f"timeout_s={self.timeout_s}, max_retries={self.max_retries})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(
        cls,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        **overrides: Any,
    ) -> VLMConfig:
        """Build from arguments, then environment, then defaults (arguments win).

        Key: ``api_key``, else ``REFSEG_VLM_API_KEY``; ``SILICONFLOW_API_KEY`` is used (first)
        only when the endpoint is SiliconFlow's, so that key never goes to another host.
        Base URL: ``base_url``, else ``REFSEG_VLM_BASE_URL``, else SiliconFlow. Model:
        ``model``, else ``REFSEG_VLM_MODEL``, else Qwen2.5-VL-72B. With a user-chosen base URL
        and no key a dummy key is used (local servers need none). Never raises for a missing
        key: check :meth:`vlm_unavailable_reason`.
        """
        url = base_url or os.environ.get(BASE_URL_ENV) or None
        key_vars = KEY_ENV_VARS if is_siliconflow(url or DEFAULT_BASE_URL) else ("REFSEG_VLM_API_KEY",)
        key = api_key or next((os.environ[v] for v in key_vars if os.environ.get(v)), None)
        if url and not key:
            key = LOCAL_DUMMY_KEY
        return cls(
            base_url=(url or DEFAULT_BASE_URL).rstrip("/"),
            model=model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
            api_key=key,
            explicit_base_url=bool(url),
            **overrides,
        )

    def vlm_unavailable_reason(self) -> str | None:
        """One line saying what is missing, or None when the VLM can be called."""
        if self.api_key:
            return None
        return (
            f"VLM off: no API key for {self.base_url}; set SILICONFLOW_API_KEY (SiliconFlow) or "
            "REFSEG_VLM_API_KEY (any endpoint), or pass --vlm-base-url for a local OpenAI-compatible server"
        )

    def with_(self, **changes: Any) -> VLMConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON string."""

    id: str
    name: str
    arguments: str

    def parse_arguments(self) -> dict[str, Any]:
        """The arguments as a dict.

        Raises:
            ValueError: not a JSON object; the message is fit to send back to the model.
        """
        import json

        text = self.arguments.strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"arguments of {self.name!r} are not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"arguments of {self.name!r} must be a JSON object, got {type(value).__name__}")
        return value

    def to_message(self) -> dict[str, Any]:
        """The ``tool_calls`` entry of an assistant message."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class VLMReply:
    """One completed chat call.

    Attributes:
        content: the assistant text (``""`` when there is none).
        tool_calls: function calls requested, in order.
        finish_reason: as the server said it (``stop``, ``tool_calls``, ``length``, or odd).
        tokens_in, tokens_out: usage reported by the server (0 when missing).
        usd: priced from the config's table (0 for unknown models).
        latency_s: seconds of the successful attempt.
        attempts: attempts it took (1 = no retry).
        model: the model that answered.
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

    def assistant_message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_message() for c in self.tool_calls]
        return msg


class VLMCallError(VLMError):
    """A VLM call that failed; ``status`` is the HTTP status when there was one."""

    def __init__(
        self, message: str, *, status: int | None = None, attempts: int = 1, retryable: bool = False
    ):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable


@dataclass
class _Failure:
    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None


OnCall = Callable[[dict[str, Any]], None]


class VLMClient:
    """Async chat client over ``openai.AsyncOpenAI`` with retries, pricing and counters.

    Args:
        config: endpoint, model, key, timeouts, retries and prices.
        on_call: called after every attempt with a dict: ``model``, ``attempt``,
            ``latency_s``, ``tokens_in``, ``tokens_out``, ``usd``, ``finish_reason``,
            ``tool_calls`` (names), ``status``, ``error`` (one line or None) and
            ``retry_in_s`` (the wait before the next attempt, or None).

    Raises:
        VLMError: the config has no key (see :meth:`VLMConfig.vlm_unavailable_reason`).

    Counters: ``calls`` (completed calls), ``attempts``, ``failures`` (calls that raised),
    ``tokens_in``, ``tokens_out``, ``usd``.
    """

    def __init__(self, config: VLMConfig, on_call: OnCall | None = None):
        reason = config.vlm_unavailable_reason()
        if reason:
            raise VLMError(reason)
        self.config = config
        self.on_call = on_call
        self._secret = config.api_key or ""
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
        self.usd = 0.0
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
            client = self._clients[loop] = openai.AsyncOpenAI(
                api_key=self.config.api_key,
                base_url=self.config.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,
            )
        return client

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
            "usd": self.usd,
        }

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        **kw: Any,
    ) -> VLMReply:
        """One chat completion, retried on transient failures.

        Args:
            messages: OpenAI chat messages (image parts as data URLs).
            tools: OpenAI function-calling tool schemas.
            tool_choice: ``auto``, ``none``, ``required`` or a named function.
            **kw: passed to ``chat.completions.create`` (``temperature``, ``max_tokens``...).

        Raises:
            VLMCallError: a non-retryable error, or retries exhausted (one-line message).
        """
        if tools:
            kw["tools"] = tools
            if tool_choice is not None:
                kw["tool_choice"] = tool_choice
        cfg = self.config
        total = cfg.max_retries + 1
        last: _Failure | None = None
        for attempt in range(1, total + 1):
            self.attempts += 1
            t0 = time.monotonic()
            failure: _Failure | None = None
            try:
                with anyio.fail_after(cfg.timeout_s + 1.0):  # the SDK timeout is per read
                    response = await self._client.chat.completions.create(
                        model=cfg.model, messages=cast(Any, messages), timeout=cfg.timeout_s, **kw
                    )
                reply = self._reply(response, time.monotonic() - t0, attempt)
            except (openai.OpenAIError, ValueError, TimeoutError, _BadResponse) as exc:
                failure = self._classify(exc)  # anything else is a bug: let it surface
            latency = time.monotonic() - t0
            if failure is None:
                self._account(reply)
                self._emit(attempt, latency, reply=reply)
                return reply
            last = failure
            delay = self._delay(failure, attempt) if failure.retryable and attempt < total else None
            self._emit(attempt, latency, failure=failure, retry_in_s=delay)
            if delay is None:
                break
            await anyio.sleep(delay)
        assert last is not None
        self.failures += 1
        where = f"{cfg.model} at {cfg.base_url}"
        if last.retryable:
            msg = f"VLM call failed after {attempt} attempt(s) ({where}): {last.message}"
        else:
            msg = f"VLM request rejected ({where}): {last.message}"
        raise VLMCallError(
            self._redact(msg), status=last.status, attempts=attempt, retryable=last.retryable
        ) from None

    # -- internals -------------------------------------------------------------------------

    def _reply(self, response: Any, latency: float, attempt: int) -> VLMReply:
        choices = getattr(response, "choices", None)
        if not choices:
            raise _BadResponse("the response has no choices")
        choice = choices[0]
        message = choice.message
        calls = []
        for i, tc in enumerate(message.tool_calls or ()):
            fn = getattr(tc, "function", None) or getattr(tc, "custom", None)
            name = getattr(fn, "name", "") or ""
            args = getattr(fn, "arguments", None)
            if args is None:
                args = getattr(fn, "input", "")
            calls.append(ToolCall(id=tc.id or f"call_{i}", name=name, arguments=str(args or "")))
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        model = getattr(response, "model", None) or self.config.model
        usd, note = price_usd(self.config.model, tokens_in, tokens_out, self.config.prices)
        if note and self.price_note is None:
            self.price_note = note
            log.warning(note)
        return VLMReply(
            content=message.content if isinstance(message.content, str) else "",
            tool_calls=tuple(calls),
            finish_reason=str(choice.finish_reason or ""),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            usd=usd,
            latency_s=latency,
            attempts=attempt,
            model=str(model),
        )

    def _classify(self, exc: Exception) -> _Failure:
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._line(getattr(exc, "message", "") or str(exc))
            retryable = status in RETRYABLE_STATUS or status >= 500
            retry_after = _retry_after(exc.response.headers) if retryable else None
            return _Failure(f"HTTP {status}: {detail}", retryable, status, retry_after)
        if isinstance(exc, openai.APITimeoutError | TimeoutError):
            return _Failure(f"timed out after {self.config.timeout_s:g} s", True)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {self._line(str(cause))}" if cause and str(cause) else ""
            return _Failure(f"connection error{detail}", True)
        if isinstance(exc, _BadResponse | ValueError | openai.APIResponseValidationError):
            return _Failure(f"malformed response: {self._line(str(exc))}", True)
        return _Failure(f"{type(exc).__name__}: {self._line(str(exc))}", False)  # other SDK errors

    def _delay(self, failure: _Failure, attempt: int) -> float:
        cfg = self.config
        if failure.retry_after is not None:
            return min(max(failure.retry_after, 0.0), cfg.retry_after_max_s)
        cap = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        return cap / 2 + random.uniform(0, cap / 2)  # equal jitter: spread, but never ~0

    def _account(self, reply: VLMReply) -> None:
        self.calls += 1
        self.tokens_in += reply.tokens_in
        self.tokens_out += reply.tokens_out
        self.usd += reply.usd

    def _emit(
        self,
        attempt: int,
        latency: float,
        reply: VLMReply | None = None,
        failure: _Failure | None = None,
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
        }
        try:
            self.on_call(event)
        except Exception:  # a broken tracer must not fail the call; it is logged, not hidden
            log.exception("VLM on_call hook failed")

    def _line(self, text: str) -> str:
        # Redact before _one_line cuts the text: a key cut in half would no longer match.
        return _one_line(self._redact(text))

    def _redact(self, text: str) -> str:
        text = text.replace(self._secret, "***") if self._secret else text
        # A server echoing the request's Authorization header: drop the whole credential.
        return _BEARER.sub("[REDACTED]", text)


_BEARER = re.compile(r"\bBearer\s+\S+", re.IGNORECASE)


class _BadResponse(Exception):
    """A 200 response the client cannot use (no choices)."""


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            if scale != 1.0:
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = when.timestamp() - time.time()
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None
