"""Jinja filters of the viewer's templates: numbers, money, seconds and JSON, one way each."""

from __future__ import annotations

import json
from typing import Any

from tools.images import hw_text

MISSING = "–"


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
    return str(value).replace("/", "/\u200b")


def pretty(value: Any) -> str:
    """Indented JSON for ``<pre>`` blocks."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


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
