"""What HTTP answers mean to the VLM client: the statuses no retry can fix, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit


class Failed(Protocol):
    """A classified failure: its HTTP status (``None`` when there was none) and message."""

    status: int | None
    message: str


NO_MODEL = re.compile(
    r"model.*(not (found|exist)|does ?n.t exist|unknown|invalid)|(unknown|invalid) model", re.IGNORECASE
)


def auth_fix(failure: Failed, model: str) -> str | None:
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
