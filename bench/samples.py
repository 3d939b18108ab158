"""The run folder's files: ``samples.jsonl`` (one line per finished example), ``config.json``.

Each line is a :class:`bench.records.SampleRecord`, read back with :func:`scan_samples`.
``samples.jsonl`` is append-only. Each line is written with one ``write`` + flush + fsync,
so a kill can only tear the *last* line; :func:`read_samples` with ``repair=True`` cuts a
torn tail off (the runner then redoes that example). A later line for the same
``example_id`` supersedes earlier ones (``--retry-failed`` appends, never rewrites).

Fault injection (the chaos scorecard's kill-and-resume row) passes a ``before_write`` hook
to :class:`SampleWriter`; the product itself has none.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bench.json_file import read_json_object
from bench.records import RunConfig, SampleRecord, Summary, parse_sample
from tools.errors import ConfigError, RefsegError

SAMPLES = "samples.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
IOUS = "ious.npy"
TRACE = "trace.jsonl"
INVOCATIONS = "invocations.jsonl"
# Called with (line number in this invocation, the line's bytes, the open file) before a line
# is written; the chaos scorecard uses it to die in the middle of a line.
WriteHook = Callable[[int, bytes, object], None]


def _truncate_torn_tail(path: Path) -> int:
    """Cut everything after the last newline; returns the number of bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        # Walk back in blocks to the last b"\n" (the tail is at most one line long).
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return size - keep


@dataclass
class SamplesScan:
    """What reading ``samples.jsonl`` found.

    Attributes:
        records: the last record per ``example_id``.
        torn: a torn last line (a writer killed mid-line): 1 when one was cut off or seen.
        bad_lines: line numbers (from 1) of complete lines that are not a record: not UTF-8,
            not JSON (NULs left by a crash), or not a record (no ``example_id``, a field of
            the wrong type).
    """

    records: dict[str, SampleRecord] = field(default_factory=dict)
    torn: int = 0
    bad_lines: list[int] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per kind of problem, naming the bad lines (empty when there is none)."""
        out = []
        if self.torn:
            out.append(f"cut off {self.torn} torn line(s) at the end of {SAMPLES}; redoing them")
        if self.bad_lines:
            shown = ", ".join(str(n) for n in self.bad_lines[:10])
            more = f" and {len(self.bad_lines) - 10} more" if len(self.bad_lines) > 10 else ""
            out.append(
                f"skipped unreadable line(s) {shown}{more} of {SAMPLES} (not a UTF-8 JSON result record); "
                "an example whose record was there is redone"
            )
        return out


_RANK_STEPS = b',"rank_steps":['


def without_rank_steps(line: bytes) -> bytes | None:
    """``line`` with its ``rank_steps`` cut off, when they are its last field (the writer puts
    them there, :class:`SampleWriter`); else ``None``.

    The marker cannot occur inside a JSON string (its quotes would be escaped), so the last
    one is the field itself; the caller still checks that the rest decodes.
    """
    start = line.rfind(_RANK_STEPS)
    if start < 0 or not line.rstrip().endswith(b"]}"):
        return None
    return line[:start] + b"}"


def parse_line(line: bytes, *, rank_steps: bool = True) -> SampleRecord | None:
    """The record of one line, or ``None`` when it is not one; without ``rank_steps`` the
    line's ranking steps (most of its bytes) are cut off unread."""
    if not rank_steps:
        cut = without_rank_steps(line)
        rec = parse_sample(cut) if cut is not None else None
        if rec is not None:
            return rec
    rec = parse_sample(line)
    if rec is not None and not rank_steps:
        rec.rank_steps = []
    return rec


def scan_samples(run_dir: str | Path, *, repair: bool = False, rank_steps: bool = False) -> SamplesScan:
    """Read ``run_dir/samples.jsonl`` line by line; never raises for what a line holds.

    Args:
        run_dir: the run folder.
        repair: truncate a torn last line (a writer killed mid-line) from the file.
        rank_steps: keep each record's ``rank_steps`` (off: cut off unread, ``[]``).
    """
    path = Path(run_dir) / SAMPLES
    scan = SamplesScan()
    if not path.exists():
        return scan
    if repair and _truncate_torn_tail(path):
        scan.torn += 1
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                scan.torn += 1  # torn tail (only seen when not repairing)
                continue
            rec = parse_line(raw.rstrip(b"\n"), rank_steps=rank_steps)
            if rec is not None:
                scan.records[rec.example_id] = rec
            elif raw.strip():
                scan.bad_lines.append(number)
    return scan


def read_samples(
    run_dir: str | Path, *, repair: bool = False, rank_steps: bool = False
) -> tuple[dict[str, SampleRecord], int]:
    """The last record per ``example_id`` in ``run_dir/samples.jsonl``.

    Args:
        run_dir: the run folder.
        repair: truncate a torn last line (a writer killed mid-line) from the file.
        rank_steps: keep each record's ``rank_steps`` (off: ``[]``).

    Returns:
        ``(records by example_id, number of torn or unreadable lines skipped)``; see
        :func:`scan_samples` for which lines they were.
    """
    scan = scan_samples(run_dir, repair=repair, rank_steps=rank_steps)
    return scan.records, scan.torn + len(scan.bad_lines)


class ResultsWriteError(RefsegError):
    """A result line could not be written (a full disk): the run stops; what is written stays."""

    exit_code = 2


class SampleWriter:
    """Appends one JSON line per call: a single ``write`` of the whole line, flush, fsync.

    The writer holds an exclusive lock on the file until :meth:`close` (the kernel drops it
    when the process dies), so two invocations on one run folder cannot both run (and
    record) the same examples. Every line carries the fields of :attr:`stamp` (the runner
    puts the configuration's digest there, so lines of different configurations never mix).
    A record's ``rank_steps`` (its bulk: candidate masks) is always the line's last field, so
    a reader that does not need them cuts them off before decoding (the viewer does).

    Args:
        run_dir: the run folder.
        before_write: fault-injection hook (see :data:`WriteHook`); ``None`` in the product.

    Raises:
        ConfigError: another process is writing to this run folder.
    """

    def __init__(self, run_dir: str | Path, before_write: WriteHook | None = None):
        self.path = Path(run_dir) / SAMPLES
        # Unbuffered, O_APPEND: the line goes to the kernel in one write call.
        self._fh = self.path.open("ab", buffering=0)
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise ConfigError(
                f"{self.path.parent} is in use by another refseg bench run; "
                "wait for it to finish or pick a new --out"
            ) from None
        self._written = 0
        self._before_write = before_write
        self.stamp: dict[str, Any] = {}

    def write(self, record: SampleRecord) -> None:
        """Append ``record`` (with :attr:`stamp`) as one line.

        Raises:
            ResultsWriteError: the line could not be written (a partial line is cut off and
                redone by the next invocation).
        """
        data = record.model_copy(update=self.stamp).to_line()
        self._written += 1
        if self._before_write is not None:
            self._before_write(self._written, data, self._fh)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it all at once; loop only for the pathological case
                n = self._fh.write(view)
                view = view[n or 0 :]
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise ResultsWriteError(
                f"cannot write {self.path}: {exc.strerror or exc}; the {self._written - 1} result(s) "
                "written by this invocation are kept: make room and run the same command again to resume"
            ) from None

    def close(self) -> None:
        self._fh.close()


def read_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object (see :func:`bench.json_file.read_json_object`)."""
    return read_json_object(path)


def read_config(run_dir: str | Path) -> RunConfig | None:
    """``run_dir/config.json`` (``None`` when absent; older files read with defaults).

    Raises:
        ConfigError: it is there but unreadable, or not a run's configuration.
    """
    path = Path(run_dir) / CONFIG
    data = read_json(path)
    if data is None:
        return None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: not a run's configuration ({_first_problem(exc)}); remove it or pick a new --out"
        ) from None


def read_summary(run_dir: str | Path) -> Summary | None:
    """``run_dir/summary.json`` (``None`` when absent; older files read with defaults).

    Raises:
        ConfigError: it is there but unreadable, or not a run's summary.
    """
    path = Path(run_dir) / SUMMARY
    data = read_json(path)
    if data is None:
        return None
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: not a run's summary ({_first_problem(exc)}); delete it to recompute it"
        ) from None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable ``key: old -> new`` lines for every setting that differs."""
    a = flatten(json.loads(json.dumps(old, default=_json_default)))
    b = flatten(json.loads(json.dumps(new, default=_json_default)))
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {_short(a.get(key))} -> {_short(b.get(key))}")
    return lines


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=_json_default)
    return text if len(text) <= limit else text[: limit - 3] + "..."
