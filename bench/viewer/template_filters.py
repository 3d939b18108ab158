"""Jinja filters of the viewer's templates: numbers, money, seconds and JSON, one way each; and
the bound on what a page carries (:func:`shown`, every template's ``finalize``)."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from tools.images import hw_text

MISSING = "–"
# What one page may carry: each text at most MAX_SHOWN_CHARS (then cut, its length shown), and
# the page as a whole at most MAX_PAGE_CHARS (the viewer answers with an error page instead).
MAX_SHOWN_CHARS = 4_000
MAX_PAGE_CHARS = 8_000_000


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with its full length shown."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut: {len(text):,} characters in all]"


def shown(value: Any) -> Any:
    """Jinja's ``finalize``: every ``{{ value }}`` of every template goes through it. Text,
    and containers rendered as text, are cut (:func:`clip`); rendered markup (a macro's
    output, already made of cut parts) and other values pass."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, list | tuple | dict | set):
        return clip(str(value))
    return value


def _clipped(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {k: _clipped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clipped(v) for v in value]
    return value


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``–`` when there is none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"{value:.{digits}f}"


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"{100 * value:.1f}%"


def usd(value: Any) -> str:
    """US dollars: 6 decimals below a cent, so a VLM call's price is still visible."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"${value:.6f}" if abs(value) < 0.01 else f"${value:.4f}"


def secs(value: Any) -> str:
    """Seconds: milliseconds below one second."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"{1000 * value:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"


def ci(value: Any) -> str:
    """A ``[lo, hi]`` interval."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return MISSING
    return f"[{num(value[0])}, {num(value[1])}]"


def wh(value: Any) -> str:
    """An ``[H, W]`` size as people read it: ``800×534`` (width first)."""
    return hw_text(value).replace("x", "×")


def breakable(value: Any) -> str:
    """A header that may wrap after each ``/`` (``tokens/img``: narrow columns, no scrolling)."""
    return clip(str(value)).replace("/", "/\u200b")


def pretty(value: Any) -> Markup:
    """Indented JSON for ``<pre>`` blocks, every string in it cut (:func:`clip`), so the
    structure stays whole; escaped here (the result is markup: ``finalize`` passes it)."""
    return Markup.escape(json.dumps(_clipped(value), indent=2, ensure_ascii=False, default=str))


FILTERS = {
    "num": num,
    "pct": pct,
    "usd": usd,
    "secs": secs,
    "ci": ci,
    "pretty": pretty,
    "wh": wh,
    "breakable": breakable,
}
