"""Reading JSON out of a model's reply: code fences, JSON inside prose, or the bare text.

Linear in the reply's length, and bounded: a reply longer than :data:`MAX_REPLY_CHARS` is
refused before any search (a JSON answer here is a few hundred characters), spans are found
with ``str.find`` / ``str.rfind`` (the regular expressions ``\\{.*\\}`` this replaced took 3.7 s
on 100,000 characters and ~70 s on 300,000, with the event loop blocked), and each candidate
is checked by :func:`tools.safe_json.check_bounds` before it is parsed (bounded nesting).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tools.errors import ToolError
from tools.safe_json import JSONLimitError, check_bounds

MAX_REPLY_CHARS = 20_000  # ~50x the longest JSON answer a prompt here asks for
_FENCE = "```"


class ReplyOverLimit(ToolError):
    """A reply too long, or nested too deeply, to be the JSON answer it was asked for.

    Attributes:
        kind: the fallback kind it is counted as: ``oversized`` (too long) or ``malformed``
            (nested too deeply, as a response body that nests too deeply is).
    """

    def __init__(self, message: str, kind: str = "oversized"):
        super().__init__(message)
        self.kind = kind


def reply_body(text: str | None) -> str:
    """The reply without surrounding whitespace, or the inside of its first code fence.

    Raises:
        ReplyOverLimit: the reply is over :data:`MAX_REPLY_CHARS` characters.
    """
    text = text or ""
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyOverLimit(
            f"the VLM's answer is {len(text):,} characters long; a JSON answer is read only up to "
            f"{MAX_REPLY_CHARS:,}"
        )
    text = text.strip()
    start = text.find(_FENCE)
    if start < 0:
        return text
    body = start + len(_FENCE)
    while body < len(text) and (text[body].isalnum() or text[body] in "_-"):
        body += 1  # the fence's language tag (```json)
    end = text.find(_FENCE, body)
    return text[body:end].strip() if end >= 0 else text


def _widest(body: str, opening: str, closing: str) -> str | None:
    start, end = body.find(opening), body.rfind(closing)
    return body[start : end + 1] if 0 <= start < end else None


def json_values(body: str) -> Iterator[Any]:
    """The JSON values ``body`` holds, most likely first: the whole body, then the widest
    ``{...}`` span, then the widest ``[...]`` span (those that parse).

    Raises:
        ReplyOverLimit: a span nested deeper than :data:`tools.safe_json.MAX_DEPTH` (its
            value would break every recursive walker after the parser).
    """
    spans = [body, _widest(body, "{", "}"), _widest(body, "[", "]")]
    for candidate in dict.fromkeys(s for s in spans if s):
        try:
            check_bounds(candidate, max_chars=MAX_REPLY_CHARS, what="the VLM's answer")
        except JSONLimitError as exc:
            raise ReplyOverLimit(str(exc), kind="malformed") from None
        try:
            yield json.loads(candidate)
        except ValueError:
            continue
