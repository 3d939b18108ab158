"""Reading JSON out of a model's reply: code fences, JSON inside prose, or the bare text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_ARRAY = re.compile(r"\[.*\]", re.DOTALL)


def reply_body(text: str | None) -> str:
    """The reply without surrounding whitespace, or the inside of its first code fence."""
    text = (text or "").strip()
    fenced = _FENCE.search(text)
    return fenced.group(1).strip() if fenced else text


def json_values(body: str) -> Iterator[Any]:
    """The JSON values ``body`` holds, most likely first: the whole body, then the widest
    ``{...}`` span, then the widest ``[...]`` span (those that parse)."""
    spans = [body, *(m.group(0) for m in (_OBJECT.search(body), _ARRAY.search(body)) if m)]
    for candidate in dict.fromkeys(spans):
        try:
            yield json.loads(candidate)
        except ValueError:
            continue
