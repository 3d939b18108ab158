"""What HTTP answers mean to the VLM client: which failures a retry can fix, which never reached
the endpoint, the statuses no retry can fix, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
import openai

from agent.vlm_reply import BadResponse

RETRYABLE_STATUS = frozenset({408, 409, 429})
# The SDK's connection and timeout errors caused by these never sent the request (no connection
# was made, or none was free in the pool): the endpoint did not see it. The SDK raises
# APIConnectionError / APITimeoutError "from" the HTTP client's (httpx2's) exception.
NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


@dataclass
class Failure:
    """One failed attempt, classified (:func:`classify`)."""

    message: str
    retryable: bool
    status: int | None = None  # the HTTP status; None when there was no answer
    retry_after: float | None = None  # seconds the server asked to wait (Retry-After)
    kind: str = "vlm_error"  # for tallies: http_<status>, timeout, connection, malformed
    reached: bool = True  # False: the request never reached the endpoint (no connection)


def classify(exc: Exception, timeout_s: float, line: Callable[[str], str]) -> Failure:
    """What a failed attempt's exception means; ``line`` makes a redacted one-line detail."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = line(getattr(exc, "message", "") or str(exc))
        retryable = status in RETRYABLE_STATUS or status >= 500
        wait = retry_after(exc.response.headers) if retryable else None
        return Failure(f"HTTP {status}: {detail}", retryable, status, wait, f"http_{status}")
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        sent = not isinstance(exc.__cause__, NOT_SENT)
        return Failure(f"timed out after {timeout_s:g} s", True, kind="timeout", reached=sent)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {line(str(cause))}" if cause and str(cause) else ""
        sent = not isinstance(cause, NOT_SENT)
        return Failure(f"connection error{detail}", True, kind="connection", reached=sent)
    if isinstance(exc, BadResponse) and not exc.retryable:  # a web page, an oversized body
        return Failure(str(exc), False, kind=exc.kind)
    if isinstance(exc, BadResponse | ValueError | openai.APIResponseValidationError):
        return Failure(f"malformed response: {line(str(exc))}", True, kind="malformed")
    return Failure(f"{type(exc).__name__}: {line(str(exc))}", False)  # other SDK errors


NO_MODEL = re.compile(
    r"model.*(not (found|exist)|does ?n.t exist|unknown|invalid)|(unknown|invalid) model", re.IGNORECASE
)


def auth_fix(failure: Failure, model: str) -> str | None:
    """What to fix when ``failure`` means no call can succeed (else ``None``): the key is
    rejected (401), has no access (403), or the endpoint has no such model (404, or a 400 that
    says so)."""
    status = failure.status
    if status == 401:
        return (
            "the API key was rejected; set REFSEG_VLM_API_KEY (or SILICONFLOW_API_KEY for "
            "SiliconFlow) to a valid key"
        )
    if status == 403:
        return (
            f"the API key has no access to model {model!r}; check the key's permissions or pass --vlm-model"
        )
    if status == 404 or (status == 400 and NO_MODEL.search(failure.message)):
        return (
            f"no model {model!r} there (or the URL is wrong); pass --vlm-model with a model the "
            "endpoint serves, and a --vlm-base-url that ends in /v1"
        )
    return None


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``: never the user, password, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def retry_after(headers: Mapping[str, str]) -> float | None:
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


# A server echoing the request's Authorization header.
BEARER = re.compile(r"\bBearer\s+\S+", re.IGNORECASE)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (redact before cutting)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
