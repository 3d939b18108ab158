"""structlog tracing: one JSON line per tool call, VLM call and guard decision.

Each run gets its own :class:`Tracer` (no global structlog configuration, so several runs
in one process, e.g. tests, never mix their files). Secrets are redacted by key name,
by known secret values (the API keys in the environment) and by shape (``sk-...``,
``Bearer ...``) before anything is written.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

import structlog

SECRET_ENV_VARS = ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY", "OPENAI_API_KEY")
REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"^(api[_-]?key|x-api-key|authorization|proxy-authorization|password|secret|"
    r"access[_-]?token|bearer|cookie|set-cookie)$",
    re.IGNORECASE,
)
_SECRET_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-]+)")
_extra_secrets: set[str] = set()
# The running episode's bound logger: VLM calls made deep inside a tool land in its trace.
CURRENT_LOG: ContextVar[Any | None] = ContextVar("refseg_current_log", default=None)


def log_vlm_call(info: dict[str, Any]) -> None:
    """``on_call`` hook of the VLM client: one ``vlm_call`` event in the current episode."""
    log = CURRENT_LOG.get()
    if log is not None:
        log.info("vlm_call", **info)


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it would be written (e.g. a key passed by flag)."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def _known_secrets() -> list[str]:
    values = {os.environ.get(name, "") for name in SECRET_ENV_VARS} | _extra_secrets
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact_text(text: str) -> str:
    for secret in _known_secrets():
        text = text.replace(secret, REDACTED)
    return _SECRET_SHAPES.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """Recursively redact secrets from dicts, lists and strings."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.match(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return redact(dict(event_dict))  # type: ignore[no-any-return]


def _add_time(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault("ts", round(time.time(), 3))
    return event_dict


class _LockedWriter:
    """A line writer shared by worker threads: one lock, flush per line."""

    def __init__(self, fh: IO[str]):
        self._fh = fh
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            self._fh.write(message + "\n")
            self._fh.flush()

    log = debug = info = warning = error = msg


class _NullWriter:
    def msg(self, message: str) -> None:
        pass

    log = debug = info = warning = error = msg


# The list the running example's trace lines go to (see collect_lines).
_COLLECTED: ContextVar[list[str] | None] = ContextVar("refseg_trace_lines", default=None)


class CollectingSink:
    """A :class:`Tracer` sink that keeps the rendered lines in memory instead of a file.

    Each line goes to the list of the :func:`collect_lines` block it was written in (so
    concurrent examples keep their lines apart); a line written outside any block waits in
    :meth:`take_loose`. A Ray worker returns an example's lines with its record and the
    driver appends them to ``trace.jsonl``, so that file has one writer.
    """

    def __init__(self) -> None:
        self._loose: list[str] = []

    def msg(self, message: str) -> None:
        target = _COLLECTED.get()
        (self._loose if target is None else target).append(message)

    log = debug = info = warning = error = msg

    def take_loose(self) -> list[str]:
        """The lines written outside any :func:`collect_lines` block so far (then forgotten)."""
        lines, self._loose = self._loose, []
        return lines


@contextmanager
def collect_lines() -> Iterator[list[str]]:
    """Within this block (and tasks started from it) a :class:`CollectingSink` appends the
    current context's trace lines to the yielded list."""
    lines: list[str] = []
    token = _COLLECTED.set(lines)
    try:
        yield lines
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
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
            writer = _LockedWriter(self._fh)
        self._writer = writer
        self._root = structlog.wrap_logger(
            writer,
            processors=[_add_time, _redact_processor, structlog.processors.JSONRenderer()],
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

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
