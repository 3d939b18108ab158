"""A ``refseg segment`` output folder: one ``result.json`` (with ``mask.png``, ``overlay.png``)
per image and controller, and the ``trace.jsonl`` of the whole command at the top.

Results are found again on every request (a folder is small), numbered in path order; pages
and image endpoints take that number, never a path. Each result's trace is the nearest
``trace.jsonl`` at or above its folder, within the folder given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.samples import TRACE
from bench.viewer.runs import ViewerError
from bench.viewer.trace_index import TraceIndex

RESULT = "result.json"
PICTURES = ("overlay.png", "mask.png")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class SegmentResult:
    """One episode's output: its folder (relative to the root) and ``result.json``."""

    n: int
    rel: str
    folder: Path
    result: dict[str, Any]
    error: str | None = None

    def picture(self, name: str) -> Path | None:
        """``overlay.png`` or ``mask.png`` of this result when present (other names: None)."""
        path = self.folder / name
        return path if name in PICTURES and path.is_file() and _inside(path, self.folder) else None


def _inside(path: Path, root: Path) -> bool:
    """``path`` resolves (links followed) to somewhere under ``root``."""
    return path.resolve().is_relative_to(root.resolve())


class SegmentFolder:
    """The output folder of ``refseg segment``.

    Raises:
        ViewerError: no ``result.json`` at or below the folder.
    """

    kind = "segment"

    def __init__(self, path: Path, name: str | None = None):
        self.path = path
        self.name = name or path.resolve().name
        self._traces: dict[Path, TraceIndex] = {}
        if not self._result_files():
            raise ViewerError(
                f"{path}: not a bench run folder (no samples.jsonl or config.json) nor a segment "
                f"output (no {RESULT}); pass the --out folder of refseg bench run or refseg segment"
            )

    def _result_files(self) -> list[Path]:
        found = [
            p
            for depth in range(_MAX_DEPTH + 1)
            for p in self.path.glob("/".join(["*"] * depth + [RESULT]))
            if p.is_file() and _inside(p, self.path)
        ]
        return sorted(found, key=lambda p: p.parent.relative_to(self.path).parts)

    def results(self) -> list[SegmentResult]:
        out = []
        for n, path in enumerate(self._result_files()):
            rel = path.parent.relative_to(self.path).as_posix()
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                error = None if isinstance(data, dict) else f"{RESULT} is not a JSON object"
            except (OSError, ValueError) as exc:  # half-written by a running command
                data, error = {}, f"{RESULT} unreadable ({type(exc).__name__}: {exc})"
            out.append(
                SegmentResult(n, rel or ".", path.parent, data if isinstance(data, dict) else {}, error)
            )
        return out

    def result(self, n: int) -> SegmentResult | None:
        results = self.results()
        return results[n] if 0 <= n < len(results) else None

    def trace_for(self, result: SegmentResult) -> TraceIndex | None:
        """The index of the nearest ``trace.jsonl`` at or above the result's folder."""
        folder = result.folder
        while True:
            candidate = folder / TRACE
            if candidate.is_file():
                return self._traces.setdefault(candidate, TraceIndex(candidate))
            if folder == self.path or folder.parent == folder:
                return None
            folder = folder.parent
