"""An episode's trace events as timeline rows, query history and VLM transcripts for the pages.

Each row is one event in file order: tool calls (arguments, seconds, cache hit, result,
error), VLM calls (model, attempt, latency, tokens, USD, status, error), agent turns,
guard decisions and the rest. ``t`` is seconds since the episode started (``ts`` of its
``episode_start``); the bar width is the call's own duration relative to the longest call
of the episode. Everything shown passes through :func:`agent.tracing.redact` first: the
tracer already redacts, and the viewer must never be the place a key leaks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.trace_render import EpisodeTrace
from agent.tracing import redact

_COMMON = {"event", "run_id", "sample_id", "step", "ts", "schema_version"}
_SHORT = 240


@dataclass
class TimelineRow:
    """One event of the timeline."""

    kind: str  # tool | vlm | turn | guard | end | other
    name: str
    t: float | None
    step: Any
    seconds: float | None = None
    cache_hit: bool | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    usd: float | None = None
    error: str | None = None
    args: str = ""
    result: str = ""
    detail: str = ""
    bar: float = 0.0  # 0..100, the share of the longest call
    fields: dict[str, Any] = field(default_factory=dict)


def compact(value: Any, limit: int = _SHORT) -> str:
    """JSON on one line, cut to ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _tool_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    detail = "rejected (sent back to the model)" if ev.get("rejected") else ""
    return TimelineRow(
        kind="tool",
        name=str(ev.get("tool", "?")),
        t=t,
        step=ev.get("step"),
        seconds=_num(ev.get("seconds")),
        cache_hit=bool(ev.get("cache_hit")),
        tokens_in=ev.get("tokens_in"),
        tokens_out=ev.get("tokens_out"),
        usd=_num(ev.get("usd")),
        error=ev.get("error"),
        args=compact(ev.get("args")),
        result=compact(ev.get("result")),
        detail=detail,
    )


def _vlm_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    calls = ev.get("tool_calls") or []
    parts = [f"attempt {ev.get('attempt')}", f"status {ev.get('status')}"]
    if ev.get("finish_reason"):
        parts.append(f"finish {ev['finish_reason']}")
    if calls:
        parts.append("asks for " + ", ".join(str(c) for c in calls))
    if ev.get("retry_in_s") is not None:
        parts.append(f"retry in {ev['retry_in_s']} s")
    return TimelineRow(
        kind="vlm",
        name=f"vlm {ev.get('model', '?')}",
        t=t,
        step=ev.get("step"),
        seconds=_num(ev.get("latency_s")),
        tokens_in=ev.get("tokens_in"),
        tokens_out=ev.get("tokens_out"),
        usd=_num(ev.get("usd")),
        error=ev.get("error"),
        detail="; ".join(parts),
    )


def _guard_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    verdict = "passed: stop" if ev.get("passed") else "not passed: go on"
    detail = (
        f"conf {ev.get('conf')} (tau {ev.get('tau_conf')}), gap {ev.get('gap')} "
        f"(tau {ev.get('tau_gap')}): {verdict}"
    )
    return TimelineRow(kind="guard", name="guard", t=t, step=ev.get("step"), detail=detail)


def _turn_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    calls = ev.get("tool_calls") or []
    detail = f"turn {ev.get('turn')}, finish {ev.get('finish_reason')}, " + (
        "asks for " + ", ".join(str(c) for c in calls) if calls else "no tool call"
    )
    return TimelineRow(
        kind="turn",
        name="agent turn",
        t=t,
        step=ev.get("step"),
        tokens_in=ev.get("tokens_in"),
        tokens_out=ev.get("tokens_out"),
        detail=detail,
        result=compact(ev.get("content")),
    )


def _end_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    detail = (
        f"chosen #{ev.get('chosen')} conf {ev.get('conf')} gap {ev.get('gap')}, "
        f"stop {ev.get('stop_reason')}, {ev.get('iterations')} iteration(s), {ev.get('turns')} turn(s)"
    )
    return TimelineRow(
        kind="end",
        name="episode_end",
        t=t,
        step=ev.get("step"),
        seconds=_num(ev.get("seconds")),
        error=ev.get("error"),
        detail=detail,
    )


def _other_row(ev: dict[str, Any], t: float | None) -> TimelineRow:
    rest = {k: v for k, v in ev.items() if k not in _COMMON}
    return TimelineRow(kind="other", name=str(ev["event"]), t=t, step=ev.get("step"), detail=compact(rest))


_BUILDERS = {
    "tool_call": _tool_row,
    "vlm_call": _vlm_row,
    "guard": _guard_row,
    "turn": _turn_row,
    "episode_end": _end_row,
}


def timeline(episode: EpisodeTrace) -> list[TimelineRow]:
    """The rows of one episode, in file order (``episode_start`` is the origin, not a row)."""
    events = [redact(ev) for ev in episode.events]
    start = next((e.get("ts") for e in events if e.get("event") == "episode_start"), None)
    origin = _num(start) if start is not None else _num(events[0].get("ts")) if events else None
    rows = []
    for ev in events:
        if ev["event"] == "episode_start":
            continue
        ts = _num(ev.get("ts"))
        t = round(ts - origin, 3) if ts is not None and origin is not None else None
        rows.append(_BUILDERS.get(ev["event"], _other_row)(ev, t))
    longest = max((r.seconds or 0.0 for r in rows if r.kind in ("tool", "vlm")), default=0.0)
    for r in rows:
        if r.kind in ("tool", "vlm") and longest > 0:
            r.bar = round(100.0 * (r.seconds or 0.0) / longest, 1)
    return rows


def episode_header(episode: EpisodeTrace) -> dict[str, Any]:
    """``episode_start`` fields (controller, expression, image size), redacted."""
    start = next((e for e in episode.events if e.get("event") == "episode_start"), {})
    return {k: v for k, v in redact(start).items() if k not in _COMMON}


def query_history(queries: list[str], episode: EpisodeTrace | None) -> list[dict[str, Any]]:
    """Each query of a record with what ranking it gave (conf, gap, top-3) when traced."""
    ranked: dict[str, dict[str, Any]] = {}
    for ev in episode.events if episode else []:
        result = ev.get("result")
        if ev.get("event") == "tool_call" and isinstance(result, dict) and "query" in result:
            ranked[str(result["query"])] = result
    out = []
    for i, query in enumerate(queries):
        res = ranked.get(str(query), {})
        top3 = res.get("top3") or []
        out.append(
            {
                "i": i,
                "query": str(query),
                "conf": res.get("conf"),
                "gap": res.get("gap"),
                "top3": ", ".join(f"#{p[0]} {p[1]}" for p in top3 if isinstance(p, list) and len(p) == 2),
            }
        )
    return out


def image_parts(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The image parts of a ``vlm_call`` event's ``messages``, numbered across all its messages."""
    out = []
    for msg in event.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image":
                out.append(part)
    return out


def vlm_call_count(episode: EpisodeTrace | None) -> int:
    """How many VLM attempts the episode made (with a transcript or not)."""
    return sum(1 for ev in episode.events if ev.get("event") == "vlm_call") if episode else 0


def vlm_transcripts(episode: EpisodeTrace | None) -> list[dict[str, Any]]:
    """The VLM calls of an episode with what they were shown and answered.

    A ``vlm_call`` event (:mod:`agent.transcript`) carries the messages of its request that
    no earlier call of the episode logged (``i``: their position in the request), ``sent``
    (how many the request had) and ``reply``. A message's ``content`` is a string or a list of
    parts ``{"type": "text", "text"}`` and ``{"type": "image", "file": "vlm_images/NAME"}``
    (a file beside ``trace.jsonl``). Calls of runs that logged no messages are left out.

    Returns:
        ``[{"event": k, "model", "attempt", "status", "error", "sent", "resent", "messages":
        [MESSAGE], "reply": MESSAGE | None}]`` with MESSAGE ``{"i", "role", "parts": [{"type":
        "text", "text"} | {"type": "image", "n": j, "file": bool, "note"}], "calls": [str],
        "reasoning": str (only when the model returned its thinking)}``:
        ``k`` is the event's position in the episode and ``j`` the image's position among the
        event's images (the image endpoint takes both).
    """
    out = []
    for k, ev in enumerate(episode.events if episode else []):
        messages = ev.get("messages")
        if ev.get("event") != "vlm_call" or not isinstance(messages, list):
            continue
        shown, images = [], 0
        for msg in messages:
            if isinstance(msg, dict):
                rendered, images = _message(msg, images)
                shown.append(rendered)
        sent: int = ev["sent"] if isinstance(ev.get("sent"), int) else len(shown)
        reply = ev.get("reply")
        out.append(
            {
                "event": k,
                "model": ev.get("model"),
                "attempt": ev.get("attempt"),
                "status": ev.get("status"),
                "error": redact(ev["error"]) if ev.get("error") else None,
                "sent": sent,
                "resent": max(0, sent - len(shown)),
                "messages": shown,
                "reply": _message(reply, images)[0] if isinstance(reply, dict) else None,
            }
        )
    return out


def _message(msg: dict[str, Any], images: int) -> tuple[dict[str, Any], int]:
    content = msg.get("content")
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    rendered, images = _parts(parts, images)
    calls = [
        f"{c.get('name', '?')}({c.get('arguments') or ''})"
        for c in msg.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    out = {"i": msg.get("i"), "role": str(msg.get("role", "?")), "parts": rendered, "calls": redact(calls)}
    if msg.get("reasoning"):  # a reasoning model's thinking: shown folded
        out["reasoning"] = redact(str(msg["reasoning"]))
    return out, images


def _parts(parts: list[Any], images: int) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "image":
            note = part.get("missing") or (f"an image at {part['url']}" if part.get("url") else None)
            has_file = isinstance(part.get("file"), str)
            shown = redact(note) if note else None
            out.append({"type": "image", "n": images, "file": has_file, "note": shown})
            images += 1
        elif isinstance(part, dict):
            if part.get("text"):
                out.append({"type": "text", "text": redact(str(part["text"]))})
        elif part is not None:
            out.append({"type": "text", "text": redact(str(part))})
    return out, images
