"""Where and how to call the VLM: endpoint, model, key, retries, and token prices.

The key comes from ``SILICONFLOW_API_KEY`` (sent to SiliconFlow only) or
``REFSEG_VLM_API_KEY``; a local server (vLLM, llama.cpp, the test server) needs only a base
URL. The key never appears in a repr, and neither do credentials inside the base URL (user
information, query values): :attr:`VLMConfig.shown_url` is what messages show.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agent.redaction import redact_url
from agent.vlm_limits import VLMLimits
from agent.vlm_profile import VLMProfile
from tools.errors import ConfigError

DEFAULT_BASE_URL = "https://api.siliconflow.cn/v1"
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
KEY_ENV_VARS = ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY")
BASE_URL_ENV = "REFSEG_VLM_BASE_URL"
MODEL_ENV = "REFSEG_VLM_MODEL"
LOCAL_DUMMY_KEY = "sk-local-no-key"  # the SDK insists on a key; local servers ignore it


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
# international siliconflow.com list. Prices change: --vlm-price-in / --vlm-price-out set them.
DEFAULT_PRICES: Mapping[str, Price] = {
    "Qwen/Qwen2.5-VL-72B-Instruct": Price(0.59, 0.59),
}


def unknown_price_note(model: str) -> str:
    """The one line for a model without a price: what is wrong and how to set it."""
    return (
        f"no price for VLM model {model!r}: its USD cost counts as 0; set it with "
        "--vlm-price-in and --vlm-price-out (USD per million input / output tokens)"
    )


def price_usd(
    model: str, tokens_in: int, tokens_out: int, prices: Mapping[str, Price]
) -> tuple[float, str | None]:
    """USD for one call and, for a model missing from ``prices``, a note saying it is 0."""
    price = prices.get(model)
    if price is None:
        folded = {k.casefold(): v for k, v in prices.items()}
        price = folded.get(model.casefold())
    if price is None:
        return 0.0, unknown_price_note(model)
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
        profile: how the model answers: coordinates, view sizing, tool calls, reply format
            (:class:`agent.vlm_profile.VLMProfile`).
        limits: the endpoint's limits (requests in flight, per minute, tokens per minute),
            held by every request of a run (:mod:`agent.vlm_limits`).
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
    profile: VLMProfile = field(default_factory=VLMProfile)
    limits: VLMLimits = field(default_factory=VLMLimits)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"VLM timeout must be > 0 seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ConfigError(f"VLM max_retries must be >= 0, got {self.max_retries}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"VLM base URL must start with http:// or https://, got {redact_url(self.base_url)!r}"
            )

    @property
    def shown_url(self) -> str:
        """The base URL as messages show it: user information and query values redacted."""
        return redact_url(self.base_url)

    def request_url(self) -> tuple[str, dict[str, str]]:
        """The base URL without its query, and the query as parameters.

        The SDK joins paths onto the base URL's text, so ``/v1?key=K`` would become
        ``/v1/?key=Kchat/completions``; the query goes with every request as parameters
        instead (``/v1/chat/completions?key=K``). User information stays in the URL: the
        HTTP client sends it as Basic credentials.
        """
        parts = urlsplit(self.base_url)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment))
        return base, dict(parse_qsl(parts.query, keep_blank_values=True))

    def __repr__(self) -> str:
        key = "None" if not self.api_key else "'***'"
        return (
            f"VLMConfig(base_url={self.shown_url!r}, model={self.model!r}, api_key={key}, "
            f"timeout_s={self.timeout_s}, max_retries={self.max_retries}, profile={self.profile.name!r})"
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
            f"VLM off: no API key for {self.shown_url}; set SILICONFLOW_API_KEY (SiliconFlow) or "
            "REFSEG_VLM_API_KEY (any endpoint), or pass --vlm-base-url for a local OpenAI-compatible server"
        )

    def price_note(self) -> str | None:
        """One line when the model has no price (its USD cost would count as 0), else None."""
        return price_usd(self.model, 0, 0, self.prices)[1]

    def with_price(self, input_per_m: float, output_per_m: float) -> VLMConfig:
        """A copy that prices this config's model at the given USD per million tokens."""
        return replace(self, prices={**self.prices, self.model: Price(input_per_m, output_per_m)})

    def with_(self, **changes: Any) -> VLMConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
