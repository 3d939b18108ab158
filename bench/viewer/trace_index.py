"""``trace.jsonl`` indexed by sample id: an example page reads only its own lines.

The index stores, per sample id, the byte offsets of its lines; it grows incrementally
like the samples (a run still being written). The sample id is found with a regular
expression on the raw line (the tracer writes ``"sample_id": "..."`` near the start of
every episode event); the lines of one sample are JSON-decoded only when its page asks for
them (as :mod:`agent.trace_events` records), and a line that is not an event or whose
``sample_id`` differs is dropped then. Episodes are grouped
by :func:`agent.trace_render.group_episodes`, exactly as ``refseg trace`` groups them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agent.trace_events import parse_event
from agent.trace_render import EpisodeTrace, group_episodes
from bench.viewer.jsonl import JsonlTail, read_lines_at

_SAMPLE_ID = re.compile(rb'"sample_id": ?"((?:[^"\\]|\\.)*)"')


class TraceIndex:
    """Byte offsets of each sample's lines in one ``trace.jsonl``."""

    def __init__(self, path: Path):
        self.path = path
        self._offsets: dict[str, list[int]] = {}
        self.tail = JsonlTail(path, self._add_line, self._offsets.clear)

    def _add_line(self, offset: int, line: bytes) -> bool:
        sample_id = _sample_id_of(line)
        if sample_id is None:
            return b'"event"' in line  # a run-level event (no sample) is fine; garbage is not
        self._offsets.setdefault(sample_id, []).append(offset)
        return True

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def episodes(self, sample_id: str) -> list[EpisodeTrace]:
        """The episodes of ``sample_id`` in file order (a resumed or retried example has several)."""
        self.tail.refresh()
        offsets = list(self._offsets.get(sample_id, ()))
        if not offsets:
            return []
        events: list[dict[str, Any]] = []
        for raw in read_lines_at(self.path, offsets):
            ev = parse_event(raw)  # a typed event (agent.trace_events), or None: not one
            if ev is not None and ev.sample_id == sample_id:
                events.append(ev.model_dump(exclude_unset=True))  # the fields the line has
        return group_episodes(events)


def _sample_id_of(line: bytes) -> str | None:
    match = _SAMPLE_ID.search(line)
    if match is not None:
        try:
            value = json.loads(b'"' + match.group(1) + b'"')
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    if b'"sample_id"' not in line:
        return None
    try:  # written some other way (no space, escaped quotes ...): decode the whole line
        ev = json.loads(line)
    except ValueError:
        return None
    sid = ev.get("sample_id") if isinstance(ev, dict) else None
    return str(sid) if sid is not None else None
