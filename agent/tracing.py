"""structlog tracing: one JSON line per tool call, VLM call and guard decision.

Each run gets its own :class:`Tracer` (no global structlog configuration, so several runs
in one process, e.g. tests, never mix their files). Before anything is written, every value
is redacted (:mod:`agent.redaction`: key names, known secret values, credential shapes, URL
credentials) and bounded: a string longer than :data:`MAX_STRING` characters, a list or dict
with more than :data:`MAX_ITEMS` entries, and whatever exceeds an event's
:data:`EVENT_BUDGET` is cut, with a marker that says how long it was. A trace file that a
killed run left without a final newline gets one before the first new event, and a trace
that cannot be written (a full disk) turns itself off with one warning instead of failing
the examples. Images a VLM was shown go beside the trace, in ``vlm_images/`` (see
:mod:`agent.trace_images`), or with the collected lines of a :class:`CollectingSink`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog

from agent.redaction import (
    REDACTED,
    SECRET_ENV_VARS,
    is_secret_key,
    redact,
    redact_text,
    register_secret,
    secrets_state,
)
from agent.trace_events import TRACE_SCHEMA_VERSION
from agent.trace_images import VLM_IMAGE_DIR, ImageFolder, image_name, image_ref, is_image_name

__all__ = [
    "CURRENT_LOG",
    "REDACTED",
    "SECRET_ENV_VARS",
    "Collected",
    "Tracer",
    "bound",
    "clip",
    "redact",
    "redact_text",
    "register_secret",
]


MAX_STRING = 2_000  # characters of one logged string
MAX_ITEMS = 50  # entries of one logged list or dict
EVENT_BUDGET = 64_000  # characters of strings in one event; beyond it, values become markers
_PLAIN = frozenset({int, float, bool})
MEMO_CHARS = MAX_STRING  # strings up to this long are redacted once per secrets state (see clip)
_SLACK = 1_000  # redact this much past a cut, so a secret across the cut is still caught
# The running episode's bound logger: VLM calls made deep inside a tool land in its trace
# (agent.transcript.log_vlm_call).
CURRENT_LOG: ContextVar[Any | None] = ContextVar("refseg_current_log", default=None)


@functools.lru_cache(maxsize=8192)
def _redact_short(text: str, state: tuple[object, ...]) -> str:
    return redact_text(text)


# An event's keys and most of its values are short strings that repeat (field names, tool
# names, stop reasons): redacting each once per secrets state keeps tracing cheap.
_secret_key = functools.lru_cache(maxsize=4096)(is_secret_key)


def clip(text: str, limit: int = MAX_STRING, state: tuple[object, ...] | None = None) -> str:
    """``text`` redacted and cut to ``limit`` characters, with a marker giving its length.

    ``state``: :func:`agent.redaction.secrets_state`, when the caller read it already (an
    event's strings are redacted under one state).
    """
    if len(text) <= limit:
        if len(text) <= MEMO_CHARS:
            return _redact_short(text, secrets_state() if state is None else state)
        return redact_text(text)
    # Redact a little more than is kept: a secret that straddles the cut is replaced whole.
    return redact_text(text[: limit + _SLACK])[:limit] + f"…[truncated: {len(text)} chars]"


def bound(value: Any, budget: list[int] | None = None, state: tuple[object, ...] | None = None) -> Any:
    """``value`` redacted and bounded (strings, entries and the event's total; see module doc)."""
    if value is None or type(value) in _PLAIN:  # most values: numbers and flags, as they are
        return value
    budget = budget if budget is not None else [EVENT_BUDGET]
    state = secrets_state() if state is None else state
    if isinstance(value, str):
        limit = max(0, min(MAX_STRING, budget[0]))
        budget[0] -= min(len(value), limit) + 32
        return clip(value, limit, state) if limit else f"[truncated: {len(value)} chars]"
    if isinstance(value, dict | list | tuple):
        if budget[0] <= 0:
            return f"[truncated: {len(value)} entries]"
        if isinstance(value, dict):
            items = list(value.items())
            out: Any = {
                clip(str(k), 200, state): (REDACTED if _secret_key(k) else bound(v, budget, state))
                for k, v in items[:MAX_ITEMS]
            }
            if len(items) > MAX_ITEMS:
                out["…"] = f"[truncated: {len(items)} entries]"
            return out
        out = [bound(v, budget, state) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out.append(f"…[truncated: {len(value)} items]")
        return out
    return value


def _clean_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return bound(dict(event_dict))  # type: ignore[no-any-return]


def _add_time(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault("ts", round(time.time(), 3))
    event_dict.setdefault("schema_version", TRACE_SCHEMA_VERSION)  # see agent.trace_events
    return event_dict


class _LockedWriter:
    """A line writer shared by worker threads: one lock, flush per line.

    A write that fails (a full disk) turns the writer off: ``failure`` says why and the
    episodes go on untraced rather than failing. Nothing is printed then: the run reports it
    once, as a note at its end, or not at all when the same full disk stops it in one line.
    """

    def __init__(self, fh: IO[str], path: Path):
        self._fh = fh
        self._path = path
        self._lock = threading.Lock()
        self.failure: str | None = None

    def msg(self, message: str) -> None:
        with self._lock:
            if self.failure is not None:
                return
            try:
                self._fh.write(message + "\n")
                self._fh.flush()
            except OSError as exc:
                reason = exc.strerror or exc
                self.failure = f"cannot write {self._path}: {reason}; tracing was off for the rest of the run"

    log = debug = info = warning = error = msg


class _NullWriter:
    def msg(self, message: str) -> None:
        pass

    log = debug = info = warning = error = msg


@dataclass
class Collected:
    """What a :class:`CollectingSink` kept: trace lines, and the images (by file name, see
    :mod:`agent.trace_images`) their events refer to."""

    lines: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)


# Where the running example's trace lines and images go (see collect_lines).
_COLLECTED: ContextVar[Collected | None] = ContextVar("refseg_trace_lines", default=None)


class CollectingSink:
    """A :class:`Tracer` sink that keeps the rendered lines (and images) in memory.

    Each line goes to the :class:`Collected` of the :func:`collect_lines` block it was
    written in (so concurrent examples keep their lines apart); a line written outside any
    block waits in :meth:`take_loose`. A Ray worker returns an example's lines and images
    with its record and the driver writes them into the run folder, which thus has one
    writer.
    """

    def __init__(self) -> None:
        self._loose = Collected()

    def _target(self) -> Collected:
        return _COLLECTED.get() or self._loose

    def msg(self, message: str) -> None:
        self._target().lines.append(message)

    log = debug = info = warning = error = msg

    def keep(self, name: str, data: bytes) -> bool:
        """Keep an image for the driver (the file name is its content digest)."""
        self._target().images[name] = data
        return True

    def take_loose(self) -> Collected:
        """What was written outside any :func:`collect_lines` block so far (then forgotten)."""
        loose, self._loose = self._loose, Collected()
        return loose


@contextmanager
def collect_lines() -> Iterator[Collected]:
    """Within this block (and tasks started from it) a :class:`CollectingSink` keeps the
    current context's trace lines and images in the yielded :class:`Collected`."""
    collected = Collected()
    token = _COLLECTED.set(collected)
    try:
        yield collected
    finally:
        _COLLECTED.reset(token)


class Tracer:
    """Writes trace events for one run to ``path`` (JSON lines), to ``sink``, or nowhere.

    Args:
        path: the trace file (appended to).
        run_id: carried by every event.
        sink: where rendered lines go instead of a file (e.g. a :class:`CollectingSink`).
    """

    def __init__(self, path: str | Path | None = None, run_id: str = "run", *, sink: Any | None = None):
        self.path = Path(path) if path is not None else None
        self.run_id = run_id
        self._fh: IO[str] | None = None
        writer: Any = sink if sink is not None else _NullWriter()
        # Where the VLM's images go: beside the trace file, or with a sink's lines.
        self._images: Any = sink if sink is not None and hasattr(sink, "keep") else None
        if self.path is not None:
            self._images = ImageFolder(self.path.parent / VLM_IMAGE_DIR)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = _ends_without_newline(self.path)
            self._fh = self.path.open("a", encoding="utf-8")
            if torn:  # a killed run's half line must not swallow our first event
                self._fh.write("\n")
            writer = _LockedWriter(self._fh, self.path)
        self._writer = writer
        self._root = structlog.wrap_logger(
            writer,
            processors=[_add_time, _clean_processor, structlog.processors.JSONRenderer()],
            context_class=dict,
        ).bind(run_id=run_id)

    def bind(self, **context: Any) -> Any:
        """A logger carrying ``context`` (sample id, ...) on every event."""
        return self._root.bind(**context)

    def event(self, event: str, **fields: Any) -> None:
        self._root.info(event, **fields)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines rendered elsewhere (a Ray worker's), redacted again on the way."""
        for line in lines:
            self._writer.msg(redact_text(line))

    def store_image(self, data: bytes, ext: str) -> str | None:
        """Keep an image a VLM was shown (``ext``: png, jpg or webp); returns how an event
        refers to it (``vlm_images/<sha256>.<ext>``), or ``None`` when it was not kept (a
        tracer that writes nowhere, a folder that cannot be written)."""
        if self._images is None:
            return None
        name = image_name(data, ext)
        return image_ref(name) if self._images.keep(name, data) else None

    def write_images(self, images: Mapping[str, bytes]) -> None:
        """Store images kept elsewhere (a Ray worker's); call it before :meth:`write_lines`
        with the lines that refer to them. A name that is not its bytes' digest is skipped."""
        if self._images is None:
            return
        for name, data in images.items():
            if is_image_name(name) and image_name(data, name.rsplit(".", 1)[1]) == name:
                self._images.keep(name, data)

    @property
    def error(self) -> str | None:
        """Why the trace stopped being written (``None`` while it is written)."""
        failure: str | None = getattr(self._writer, "failure", None)
        return failure

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):  # lines it could not flush were reported already
                self._fh.close()
            self._fh = None

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_without_newline(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            if fh.tell() == 0:
                return False
            fh.seek(-1, 2)
            return fh.read(1) != b"\n"
    except OSError:
        return False
