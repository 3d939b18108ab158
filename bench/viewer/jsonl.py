"""Incremental reading of append-only JSON-lines files (``samples.jsonl``, ``trace.jsonl``).

A run still being written grows by whole lines, except that its last line may be torn (a
write in progress, or a killed writer). :class:`JsonlTail` remembers how far it has read
and, on :meth:`JsonlTail.refresh`, reads only the bytes added since, up to the last
newline: a torn tail is left for the next refresh, an undecodable complete line is counted
and skipped. A file that shrank (the runner cut a torn tail off on resume) below what was
read, or was replaced (another inode), is read again from the start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileState:
    """What identifies one version of a file: inode, size and modification time."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileState | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


MAX_SKIPPED_SHOWN = 10  # line numbers of unreadable lines kept for the page

# Called with (byte offset of the line, the line without its newline); returns False when
# the line is unreadable (it is counted in ``skipped``).
LineSink = Callable[[int, bytes], bool]


class JsonlTail:
    """Feeds each complete line of ``path`` to ``on_line`` once, in file order.

    Args:
        path: the file (it may not exist yet).
        on_line: receives ``(offset, line)``; returns False for an unreadable line.
        on_reset: called before the file is read again from the start.
    """

    def __init__(self, path: Path, on_line: LineSink, on_reset: Callable[[], None]):
        self.path = path
        self._on_line = on_line
        self._on_reset = on_reset
        self._lock = threading.Lock()
        self._state: FileState | None = None
        self.offset = 0  # bytes consumed: always just after a newline
        self.lines = 0  # complete lines consumed
        self.skipped = 0  # complete lines that were not readable records
        self.skipped_at: list[int] = []  # their line numbers (from 1), the first few
        self.torn_tail_bytes = 0  # bytes after the last newline (a line being written)

    @property
    def state(self) -> FileState | None:
        """The file as last read (``None``: not read yet, or absent)."""
        return self._state

    def refresh(self) -> bool:
        """Read what was appended since the last call; True when anything changed."""
        with self._lock:
            state = FileState.of(self.path)
            if state == self._state:
                return False
            previous, self._state = self._state, state
            if state is None:
                self._reset()
                return previous is not None
            if previous is None or state.inode != previous.inode or state.size < self.offset:
                self._reset()
            self._read_from(self.offset, state.size)
            return True

    def _reset(self) -> None:
        self.offset = self.lines = self.skipped = self.torn_tail_bytes = 0
        self.skipped_at = []
        self._on_reset()

    def _read_from(self, start: int, size: int) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(start)
                data = fh.read(max(0, size - start))
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # 0 when no complete line was added
        pos = 0
        while pos < end:
            nl = data.index(b"\n", pos)
            line = data[pos:nl]
            self.lines += 1
            if line.strip() and not self._on_line(start + pos, line):
                self.skipped += 1
                if len(self.skipped_at) < MAX_SKIPPED_SHOWN:
                    self.skipped_at.append(self.lines)
            pos = nl + 1
        self.offset = start + end
        self.torn_tail_bytes = len(data) - end


def read_lines_at(path: Path, offsets: list[int]) -> list[bytes]:
    """The lines starting at each of ``offsets``, in that order, from one open file."""
    out = []
    with path.open("rb") as fh:
        for offset in offsets:
            fh.seek(offset)
            out.append(fh.readline().rstrip(b"\n"))
    return out
