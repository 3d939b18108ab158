"""``refseg trace``: render a run's trace.jsonl as a readable tree, one episode at a time.

The file is what :class:`agent.tracing.Tracer` writes: one JSON object per line with
``event``, ``run_id``, ``sample_id``, ``step`` and ``ts``. Reading is forgiving: a torn last
line (a run killed mid-write) or any unparseable line is skipped and counted, and events
this viewer does not know are shown with their fields instead of being dropped.

VLM calls are logged by the client hook before the event that caused them, so pending
``vlm_call`` events are attached to the next ``turn`` (the agent's own calls), the next
``ground`` (the ground controller's question) or the next ``tool_call`` (a VLM-backed tool
such as the VLM refiner).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.redaction import redact
from agent.trace_costs import cost_lines
from agent.trace_costs import short_number as _num
from tools.errors import InputError
from tools.images import hw_text

TRACE_FILE = "trace.jsonl"
_COMMON = {"event", "run_id", "sample_id", "step", "ts"}
_MAX_ARGS = 160


class TraceError(InputError):
    """A trace file that is missing, empty, or lacks the requested sample."""


@dataclass
class EpisodeTrace:
    """The events of one episode, in file order."""

    run_id: str
    sample_id: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return any(e.get("event") == "episode_end" for e in self.events)


def resolve_trace_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/trace.jsonl`` when it is a folder.

    Raises:
        TraceError: nothing to read there.
    """
    p = Path(path)
    if p.is_dir():
        if (p / TRACE_FILE).is_file():
            return p / TRACE_FILE
        found = sorted(p.glob(f"*/{TRACE_FILE}"))
        hint = f"; did you mean {found[0]}?" if found else ""
        raise TraceError(f"{p} has no {TRACE_FILE}{hint}")
    if not p.is_file():
        raise TraceError(f"trace file {p} not found; pass a trace.jsonl or the run folder holding one")
    return p


def read_events(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """All parseable events of a trace file and the number of lines skipped."""
    events: list[dict[str, Any]] = []
    skipped = 0
    with resolve_trace_path(path).open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                skipped += 1  # a torn line from a run that was killed mid-write
                continue
            if isinstance(obj, dict) and isinstance(obj.get("event"), str):
                events.append(obj)
            else:
                skipped += 1
    return events, skipped


def group_episodes(events: list[dict[str, Any]]) -> list[EpisodeTrace]:
    """Episodes in order of first appearance; a sample run twice (resume) gives two."""
    episodes: list[EpisodeTrace] = []
    open_: dict[tuple[str, str], EpisodeTrace] = {}
    for ev in events:
        sid = ev.get("sample_id")
        if sid is None:
            continue  # run-level events (no sample) belong to no episode
        key = (str(ev.get("run_id", "")), str(sid))
        current = open_.get(key)
        if current is None or (ev["event"] == "episode_start" and current.events):
            current = EpisodeTrace(*key)
            episodes.append(current)
            open_[key] = current
        current.events.append(ev)
        if ev["event"] == "episode_end":
            open_.pop(key, None)
    return episodes


# -- formatting ----------------------------------------------------------------------------


@dataclass
class _Node:
    label: str
    children: list[_Node] = field(default_factory=list)


def _compact(value: Any, limit: int = _MAX_ARGS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _result_text(result: Any) -> str:
    if not isinstance(result, dict):
        return _compact(result)
    parts = []
    for key, value in result.items():
        if key == "top3" and isinstance(value, list):
            value = " ".join(f"#{p[0]}:{p[1]}" for p in value if isinstance(p, list) and len(p) == 2)
        parts.append(f"{key}={_compact(value, 80)}")
    return " ".join(parts)


def _vlm_label(ev: dict[str, Any]) -> str:
    attempt = ev.get("attempt")
    head = f"vlm_call {ev.get('model', '?')}" + (f" attempt {attempt}" if attempt not in (None, 1) else "")
    tail = (
        f"latency {_num(ev.get('latency_s', 0))}s tokens {ev.get('tokens_in', 0)}/{ev.get('tokens_out', 0)}"
    )
    if ev.get("reasoning_tokens") is not None:
        tail += f" (reasoning {ev['reasoning_tokens']})"
    if ev.get("dropped"):
        tail += f", server refused {'+'.join(map(str, ev['dropped']))}: sent without"
    if ev.get("error"):
        retry = ev.get("retry_in_s")
        again = f", retry in {_num(retry)}s" if retry is not None else ", gave up"
        return f"{head}  FAILED status={ev.get('status')} {ev['error']}{again}  ({tail}){_shown(ev)}"
    calls = ev.get("tool_calls") or []
    asked = f" -> {', '.join(calls)}" if calls else ""
    usd = ev.get("usd")
    cost = f" ${usd:.6f}" if isinstance(usd, int | float) and usd else ""
    return f"{head}  {tail}{cost} finish={ev.get('finish_reason')}{asked}{_shown(ev)}"


def _shown(ev: dict[str, Any]) -> str:
    """``"  [sent 5 messages: 2 new, 1 image]"``: what a call's transcript holds (the viewer shows it)."""
    messages = ev.get("messages")
    if not isinstance(messages, list):
        return ""
    images = sum(
        1
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "image"
    )
    return f"  [sent {ev.get('sent', '?')} messages: {len(messages)} new, {images} image(s)]"


def _tool_label(ev: dict[str, Any]) -> str:
    head = f"tool {ev.get('tool', '?')}({_compact(ev.get('args', {}))})"
    served = " joined an identical call" if ev.get("served") == "joined" else ""
    # The event's seconds are the call's wall time (validation, cache, queueing, compute); the
    # cost summary's seconds are compute only, so the label says which this is.
    timing = f"{_num(ev.get('seconds', 0))}s wall" + (" cache hit" if ev.get("cache_hit") else served)
    if ev.get("error"):
        what = "REJECTED" if ev.get("rejected") else "ERROR"
        return f"{head}  {timing}  {what}: {ev['error']}"
    return f"{head}  {timing}  -> {_result_text(ev.get('result'))}"


def _guard_label(ev: dict[str, Any]) -> str:
    conf, gap = ev.get("conf", 0), ev.get("gap", 0)
    tc, tg = ev.get("tau_conf", "?"), ev.get("tau_gap", "?")
    ok_c = isinstance(conf, int | float) and isinstance(tc, int | float) and conf >= tc
    ok_g = isinstance(gap, int | float) and isinstance(tg, int | float) and gap >= tg
    verdict = "PASSED: stop" if ev.get("passed") else "not passed: go on"
    return (
        f"guard conf {_num(conf)} {'>=' if ok_c else '<'} {tc}, gap {_num(gap)} "
        f"{'>=' if ok_g else '<'} {tg}  {verdict}"
    )


def _other_label(ev: dict[str, Any]) -> str:
    name = ev["event"]
    rest = {k: v for k, v in ev.items() if k not in _COMMON}
    if name == "submit":
        reason = f" ({rest['reason']})" if rest.get("reason") else ""
        return f"submit candidate #{rest.get('index')} prob {_num(rest.get('prob'))}{reason}"
    if name == "agent_stop":
        detail = f"  {rest['detail']}" if rest.get("detail") else ""
        return f"agent_stop reason={rest.get('reason')} turns={rest.get('turns')}{detail}"
    if name == "refine_stalled":
        return f"refine stalled: query unchanged ({rest.get('query')!r})"
    if name == "agent_tools":
        return f"tools offered: {', '.join(rest.get('tools') or [])}"
    if name == "prompt":
        return _prompt_label(rest)
    if name == "ground_choice":
        verdict = "confirmed: chosen" if rest.get("confirmed") else "not confirmed: ranker's choice kept"
        return (
            f"ground choice: drawn #{rest.get('drawn')} agreement {_num(rest.get('agreement'))} "
            f"{verdict} (ranker top #{rest.get('ranker_top')})"
        )
    return f"{name} {_compact(rest)}"


def _size(value: Any) -> str:  # a prompt event's view_size / image_size: [W, H] (a frame's)
    return hw_text(value[::-1]) if isinstance(value, list) else "?"


def _prompt_label(ev: dict[str, Any]) -> str:
    """A drawn prompt with its box and points in both frames."""
    view = f"VLM view {_size(ev.get('view_size'))} {ev.get('units')}"
    image = f"image {_size(ev.get('image_size'))}"
    parts = []
    if "box_view" in ev:
        parts.append(f"box {ev['box_view']} ({view}) = {ev.get('box_image')} ({image})")
    if "points_view" in ev:
        points = f"points {ev['points_view']} labels {ev.get('labels')}"
        parts.append(f"{points} ({view}) = {ev.get('points_image')} ({image})")
    return f"prompt {ev.get('tool')}: {'; '.join(parts)} -> candidate(s) {ev.get('added')}"


def _ground_label(ev: dict[str, Any]) -> str:
    if ev.get("error"):
        return f"ground: VLM asked for the box: {ev['error']}"
    found = "found" if ev.get("found") else "found nothing"
    return f"ground: VLM asked for the box ({found}): {_compact(ev.get('answer', ''), 120)}"


def _end_node(ev: dict[str, Any]) -> _Node:
    chosen = ev.get("chosen")
    label = (
        f"final: chosen #{chosen} conf {_num(ev.get('conf'))} gap {_num(ev.get('gap'))}  "
        f"stop={ev.get('stop_reason')} iterations={ev.get('iterations')} turns={ev.get('turns')} "
        f"{_num(ev.get('seconds'))}s"
    )
    node = _Node(label)
    if ev.get("error"):
        node.children.append(_Node(f"error: {ev['error']}"))
    queries = ev.get("queries") or []
    if queries:
        node.children.append(_Node("queries: " + " -> ".join(repr(q) for q in queries)))
    for cand in ev.get("candidates") or []:
        origin = f" from {cand['origin']}" if cand.get("origin") else ""
        node.children.append(
            _Node(
                f"candidate #{cand.get('index')} prob {cand.get('prob')} box {cand.get('box_xyxy')}{origin}"
            )
        )
    for note in ev.get("notes") or []:
        node.children.append(_Node(f"note: {note}"))
    costs = ev.get("costs") or {}
    if costs:
        node.children.append(_Node("cost per tool", [_Node(line) for line in cost_lines(costs)]))
    return node


def episode_tree(ep: EpisodeTrace) -> _Node:
    """The episode as a tree of labelled nodes."""
    start = next((e for e in ep.events if e["event"] == "episode_start"), {})
    label = f"episode sample={ep.sample_id} run={ep.run_id}"
    if start:
        label += f" controller={start.get('controller')} expression={start.get('expression')!r}"
        if start.get("image_size"):
            label += f" image={hw_text(start['image_size'])}"  # [H, W], shown W x H
    root = _Node(label)
    level = root  # the current turn, or the episode itself before/without turns
    pending: list[dict[str, Any]] = []  # vlm_call events waiting for what they belong to
    for ev in ep.events:
        name = ev["event"]
        if name == "vlm_call":
            pending.append(ev)
            continue
        if name == "episode_start":
            continue
        if name == "turn":
            calls = ev.get("tool_calls") or []
            asked = ", ".join(calls) if calls else "no tool call"
            level = _Node(f"turn {ev.get('turn')}  finish={ev.get('finish_reason')}  -> {asked}")
            level.children.extend(_Node(_vlm_label(v)) for v in pending)
            if ev.get("content"):
                level.children.append(_Node(f"says: {_compact(ev['content'], 120)}"))
            pending.clear()
            root.children.append(level)
            continue
        if name in ("tool_call", "ground"):
            label = _tool_label(ev) if name == "tool_call" else _ground_label(ev)
            node = _Node(label, [_Node(_vlm_label(v)) for v in pending])
            pending.clear()
            level.children.append(node)
            continue
        for v in pending:  # VLM attempts nothing claimed (e.g. retries that ran out)
            level.children.append(_Node(_vlm_label(v)))
        pending.clear()
        if name == "guard":
            level.children.append(_Node(_guard_label(ev)))
        elif name == "episode_end":
            root.children.append(_end_node(ev))
        elif name == "agent_stop":
            root.children.append(_Node(_other_label(ev)))
        else:
            level.children.append(_Node(_other_label(ev)))
    root.children.extend(_Node(_vlm_label(v)) for v in pending)
    if not ep.closed:
        root.children.append(_Node("(no episode_end: the run stopped before this episode finished)"))
    return root


def _render(node: _Node, prefix: str = "", last: bool = True, top: bool = True) -> list[str]:
    lines = [node.label if top else f"{prefix}{'└─ ' if last else '├─ '}{node.label}"]
    child_prefix = "" if top else prefix + ("   " if last else "│  ")
    for i, child in enumerate(node.children):
        lines.extend(_render(child, child_prefix, i == len(node.children) - 1, top=False))
    return lines


def select_episodes(
    episodes: list[EpisodeTrace], sample: str | None, where: str = "the trace"
) -> list[EpisodeTrace]:
    """The episodes of ``sample`` (all when ``None``).

    Raises:
        TraceError: no episodes, or none for ``sample``.
    """
    if not episodes:
        raise TraceError(f"{where} has no episodes")
    if sample is None:
        return episodes
    chosen = [e for e in episodes if e.sample_id == sample]
    if not chosen:
        known = list(dict.fromkeys(e.sample_id for e in episodes))
        more = f" (and {len(known) - 8} more)" if len(known) > 8 else ""
        raise TraceError(
            f"no episode for sample {sample!r} in {where}; known samples: {', '.join(known[:8])}{more}"
        )
    return chosen


def render_trace(path: str | Path, sample: str | None = None, as_json: bool = False) -> str:
    """Render the episodes of a trace file (or only those of ``sample``).

    Args:
        path: a trace.jsonl, or a run folder holding one.
        sample: a sample id; ``None`` renders every episode.
        as_json: return the selected episodes' events grouped as JSON instead of a tree.

    Raises:
        TraceError: the file is missing or empty, or has no episode for ``sample``.
    """
    file = resolve_trace_path(path)
    events, skipped = read_events(file)
    events = [redact(e) for e in events]  # a trace written before a secret was known as one
    chosen = select_episodes(group_episodes(events), sample, str(file))
    if as_json:
        payload = {
            "trace": str(file),
            "skipped_lines": skipped,
            "episodes": [{"run_id": e.run_id, "sample_id": e.sample_id, "events": e.events} for e in chosen],
        }
        return json.dumps(payload, indent=2, default=str)
    blocks = ["\n".join(_render(episode_tree(e))) for e in chosen]
    if skipped:
        blocks.append(f"({skipped} unreadable line(s) skipped, e.g. a torn last line)")
    return "\n\n".join(blocks)
