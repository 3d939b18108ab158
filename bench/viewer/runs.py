"""The run index: a bench run folder read as it is, including while it is being written.

``samples.jsonl`` is read incrementally (:class:`bench.viewer.jsonl.JsonlTail`), each line as a
:class:`bench.records.SampleRecord`: the last record per ``example_id`` wins, as in
:func:`bench.samples.read_samples`. Each record also
gives one compact :class:`Row` for the examples table. A record's ``rank_steps`` (most of a
line's bytes: candidate masks) are cut out before the line is decoded and kept on disk: the
example page reads them from the line's offset (:meth:`RunFolder.rank_steps`). ``trace.jsonl`` is indexed by
sample id (:class:`bench.viewer.trace_index.TraceIndex`), so an example page reads only its
own lines. The summary is ``summary.json`` when it is up to date, else computed live from
the records (:mod:`bench.viewer.live_summary`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

from bench.options import DataSpec
from bench.records import RankStepRecord, RunConfig, SampleRecord, Summary
from bench.run_folder import recorded_data
from bench.samples import CONFIG, INVOCATIONS, SAMPLES, SUMMARY, TRACE, parse_line, read_config, read_summary
from bench.viewer.jsonl import FileState, JsonlTail, read_lines_at
from bench.viewer.trace_index import TraceIndex
from tools.errors import InputError, RefsegError


class ViewerError(InputError):
    """A path the viewer cannot show (not a run folder nor a segment output)."""


class Row(NamedTuple):
    """One example in the table: the fields it shows, sorts, filters and searches on.

    (A named tuple: 5,000 of them are built on a cold start, and tuples build fastest.)
    """

    position: int  # the record's "index": its place in the example order
    example_id: str
    image_id: str
    sentence: str
    iou: float
    failed: bool
    error: str | None
    stop_reason: str
    iterations: int
    conf: float | None
    gap: float | None
    seconds: float
    usd: float
    queries: tuple[str, ...]
    search_text: str  # lower-cased id, sentence and queries

    @classmethod
    def of(cls, rec: SampleRecord) -> Row:
        queries = tuple(rec.queries)
        return cls(
            rec.index,
            rec.example_id,
            rec.image_id,
            rec.sentence,
            rec.iou,
            rec.failed,
            rec.error,
            rec.stop_reason,
            rec.iterations,
            rec.conf,
            rec.gap,
            rec.seconds,
            rec.usd,
            queries,
            "\n".join((rec.example_id, rec.sentence, *queries)).lower(),
        )


class SampleStore:
    """The last record (and its :class:`Row`) per example id of ``samples.jsonl``.

    Kept up to date by :meth:`refresh`, which reads only the lines appended since. Records
    are kept without their ``rank_steps``; ``offsets`` says where each line is.
    """

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, SampleRecord] = {}
        self.offsets: dict[str, int] = {}
        self._by_id: dict[str, Row] = {}
        self.version = 0  # bumped whenever records change
        self._rows: list[Row] = []
        self._rows_version = 0
        self.tail = JsonlTail(path, self._add_line, self._clear)

    def _clear(self) -> None:
        self.records, self.offsets, self._by_id = {}, {}, {}

    def _add_line(self, offset: int, line: bytes) -> bool:
        rec = parse_line(line, rank_steps=False)  # read again from the line when a page asks for them
        if rec is None:
            return False
        self.records[rec.example_id] = rec
        self.offsets[rec.example_id] = offset
        self._by_id[rec.example_id] = Row.of(rec)
        return True

    def rank_steps(self, example_id: str) -> list[RankStepRecord] | None:
        """The example's ``rank_steps`` from its line (``None``: not recorded, or the file changed)."""
        offset = self.offsets.get(example_id)
        if offset is None:
            return None
        try:
            line = read_lines_at(self.path, [offset])[0]
        except OSError:
            return None
        rec = parse_line(line)
        if rec is None or rec.example_id != example_id:
            return None  # rewritten since it was read: the next refresh reads it again
        return rec.rank_steps if b'"rank_steps"' in line else None

    def refresh(self) -> None:
        if self.tail.refresh():
            self.version += 1

    def rows(self) -> list[Row]:
        """All rows in example order (the ``index`` the runner gave them)."""
        if self._rows_version != self.version:
            self._rows = sorted(self._by_id.values(), key=lambda r: r.position)
            self._rows_version = self.version
        return self._rows

    def row(self, example_id: str) -> Row | None:
        return self._by_id.get(example_id)


class _JsonFile:
    """A small JSON file (read as ``model``) re-read only when it changed."""

    def __init__(self, path: Path, read: Callable[[Path], BaseModel | None]):
        self.path = path
        self._read = read
        self._state: FileState | None = None
        self._data: Any = None
        self.error: str | None = None

    def get(self) -> Any:
        state = FileState.of(self.path)
        if state != self._state:
            self._state, self.error = state, None
            try:
                self._data = self._read(self.path.parent) if state is not None else None
            except RefsegError as exc:  # half-written or damaged: say so, keep going
                self._data, self.error = None, str(exc)
        return self._data

    @property
    def state(self) -> FileState | None:
        return self._state


class RunFolder:
    """A ``refseg bench run`` output folder.

    Args:
        path: the folder; it needs ``samples.jsonl`` or ``config.json``.
        name: how pages label it (default: the folder name).

    Raises:
        ViewerError: neither file is there.
    """

    kind = "run"

    def __init__(self, path: Path, name: str | None = None):
        if not (path / SAMPLES).is_file() and not (path / CONFIG).is_file():
            raise ViewerError(f"{path}: not a bench run folder (no {SAMPLES} or {CONFIG})")
        self.path = path
        self.name = name or path.resolve().name
        self.samples = SampleStore(path / SAMPLES)
        self.trace = TraceIndex(path / TRACE)
        self._config = _JsonFile(path / CONFIG, read_config)
        self._summary = _JsonFile(path / SUMMARY, read_summary)

    def refresh(self) -> None:
        """Pick up lines appended since the last call (cheap when nothing changed)."""
        self.samples.refresh()

    def config(self) -> RunConfig | None:
        """``config.json`` (``None`` when absent or unreadable: see :attr:`config_error`)."""
        config: RunConfig | None = self._config.get()
        return config

    @property
    def config_error(self) -> str | None:
        return self._config.error

    def data_spec(self) -> DataSpec | None:
        """The data selection the run recorded: where its examples (and images) came from."""
        return recorded_data(self.config())

    def expected(self) -> int | None:
        config = self.config()
        examples = config.results.examples if config is not None else None
        return examples.count if examples is not None else None

    def stored_summary(self) -> Summary | None:
        """``summary.json`` when it describes exactly the records read now, else ``None``."""
        summary: Summary | None = self._summary.get()
        samples_state = self.samples.tail.state
        if summary is None or self._summary.state is None or samples_state is None:
            return None
        fresh = self._summary.state.mtime_ns >= samples_state.mtime_ns
        return summary if fresh and summary.counts.examples == len(self.samples.records) else None

    def invocations(self) -> list[dict[str, Any]]:
        path = self.path / INVOCATIONS
        out = []
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out

    def record(self, example_id: str) -> SampleRecord | None:
        """The example's last record, without ``rank_steps`` (see :meth:`rank_steps`)."""
        return self.samples.records.get(example_id)

    def rank_steps(self, example_id: str) -> list[RankStepRecord] | None:
        """The example's ``rank_steps`` (``None`` when its record has none)."""
        return self.samples.rank_steps(example_id)
