"""JSON from outside (VLM replies, tool arguments, options, run files), bounded before parsing.

``json.loads`` is linear, but nothing else about untrusted JSON is bounded: a reply of
600,000 characters is parsed whole, and 3,000 nested brackets (6 KB) parse into a value that
every recursive walker after it (redaction, the tracer, pydantic) turns into a
``RecursionError``. :func:`check_bounds` refuses text over a length and nesting over a depth,
both measured in linear time (the nesting with numpy, see :func:`nesting_depth`), with
:class:`JSONLimitError` (a ``ValueError``); :func:`loads` checks, then parses.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tools.errors import ConfigError

MAX_DEPTH = 64  # the deepest legitimate value here (a chat completion) is under 10 levels
MAX_OPTION_CHARS = 10_000  # one option value given on the command line (a SAM config: ~400)
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = np.array([ord("["), ord("{")]), np.array([ord("]"), ord("}")])


class JSONLimitError(ValueError):
    """Text refused before parsing: too long, or nested too deeply."""


def nesting_depth(text: str | bytes) -> int:
    """The deepest bracket nesting of ``text`` outside JSON strings, in linear time (numpy, no
    Python loop over characters, no regular expression that could backtrack).

    A quote opens or closes a string unless an odd run of backslashes precedes it; in text
    that is not JSON the figure is still an upper bound on what a parser would nest.
    """
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if b"[" not in raw and b"{" not in raw:
        return 0
    codes = np.frombuffer(raw, dtype=np.uint8)
    index = np.arange(codes.size)
    last_other = np.maximum.accumulate(np.where(codes == _BACKSLASH, -1, index))
    backslashes_before = np.zeros(codes.size, dtype=np.int64)
    backslashes_before[1:] = index[:-1] - last_other[:-1]
    quotes = (codes == _QUOTE) & (backslashes_before % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0
    steps = (np.isin(codes, _OPEN) & outside).astype(np.int64) - (np.isin(codes, _CLOSE) & outside)
    return int(np.cumsum(steps).max(initial=0))


def check_bounds(
    text: str | bytes, *, max_chars: int, max_depth: int = MAX_DEPTH, what: str = "JSON"
) -> None:
    """Raise :class:`JSONLimitError` when ``text`` is longer than ``max_chars`` or nested
    deeper than ``max_depth``; the message names ``what`` and both figures."""
    if len(text) > max_chars:
        raise JSONLimitError(f"{what}: {len(text):,} characters, over the limit of {max_chars:,}")
    # Nesting never exceeds the number of opening brackets: most texts are settled by a count.
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JSONLimitError(f"{what}: nested {depth:,} levels deep, over the limit of {max_depth}")


def loads(text: str | bytes, *, max_chars: int, max_depth: int = MAX_DEPTH, what: str = "JSON") -> Any:
    """``json.loads(text)`` after :func:`check_bounds`.

    Raises:
        JSONLimitError: over the limits.
        ValueError: not valid JSON (the message names ``what`` and where it broke).
    """
    check_bounds(text, max_chars=max_chars, max_depth=max_depth, what=what)
    try:
        return json.loads(text)
    except RecursionError:  # not reached under MAX_DEPTH; kept for callers passing a larger one
        raise JSONLimitError(f"{what}: nested too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes
        raise ValueError(f"{what}: not valid JSON ({exc})") from None


def option_value(text: str, what: str) -> Any:
    """A command-line option's value: JSON when it parses as JSON, else the text itself (a bare
    word), after :func:`check_bounds` with :data:`MAX_OPTION_CHARS`.

    Raises:
        ConfigError: one line naming ``what`` when the value is too long or nested too deeply.
    """
    try:
        check_bounds(text, max_chars=MAX_OPTION_CHARS, what=what)
    except JSONLimitError as exc:
        raise ConfigError(f"{exc}; pass a shorter, flatter value") from None
    try:
        return json.loads(text)
    except ValueError:
        return text
