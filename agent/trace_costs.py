"""The "cost per tool" lines of ``refseg trace``: an episode's cost records (:mod:`agent.costs`)
in words, each wait labelled with what it waited on."""

from __future__ import annotations

from typing import Any

# Below this, what is left of wait_seconds after vlm_wait_seconds is rounding, not a wait.
_NO_WAIT_S = 5e-4


def short_number(value: Any) -> str:
    """A number at 4 significant digits (anything else as its text)."""
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def wait_parts(c: dict[str, Any]) -> list[str]:
    """A tool's waits by what they waited on: an identical call in flight (``wait_seconds``
    less ``vlm_wait_seconds``), and the VLM limits and the pauses between VLM retries
    (``vlm_wait_seconds``)."""
    vlm = float(c.get("vlm_wait_seconds") or 0.0)
    joined = float(c.get("wait_seconds") or 0.0) - vlm
    parts = [f"{short_number(joined)}s waiting on an identical call"] if joined >= _NO_WAIT_S else []
    if vlm >= _NO_WAIT_S:
        parts.append(f"{short_number(vlm)}s waiting on the VLM limits and retry pauses")
    return parts


def cost_lines(costs: dict[str, Any]) -> list[str]:
    """One line per tool of an ``episode_end`` event's ``costs``, in name order."""
    rows = []
    for tool, c in sorted(costs.items()):
        if not isinstance(c, dict):
            continue
        parts = [f"{c.get('calls', 0)} call(s)", f"{short_number(c.get('seconds', 0))}s compute"]
        if "computed" in c:
            parts.append(
                f"{c['computed']} computed, {c.get('joined', 0)} joined, {c.get('cache_hits', 0)} cached"
            )
        elif c.get("cache_hits"):
            parts.append(f"{c['cache_hits']} cache hit(s)")
        parts += wait_parts(c)
        if c.get("errors"):
            parts.append(f"{c['errors']} error(s)")
        if c.get("tokens_in") or c.get("tokens_out"):
            parts.append(f"tokens {c.get('tokens_in', 0)}/{c.get('tokens_out', 0)}")
        if c.get("usd"):
            parts.append(f"${c['usd']:.6f}")
        rows.append(f"{tool}: {', '.join(parts)}")
    return rows


__all__ = ["cost_lines", "short_number", "wait_parts"]
