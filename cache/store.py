"""Tool-output memoization on diskcache, with a Disk that refuses pickle.

diskcache pickles anything that is not ``bytes``/``str``/number, and unpickles any row
whose mode says so. :class:`SafeDisk` only writes and reads raw keys and byte values,
so a tampered cache database can at worst yield a miss, never run code.

A cache is an accelerator, never a reason to lose a result: a cache folder that cannot be
opened (read-only, not a folder, a database locked by another process) is a one-line
:class:`CacheUnavailable` at start (the message suggests ``--no-cache``); a read or write
that fails mid-run (a full disk, a lock held too long) turns the disk cache off for the rest
of the run with one warning, and :meth:`ToolCache.health` says so for the run's summary.
SQLite waits at most ``timeout_s`` for a lock, and nothing is retried.

A run reads and writes the database on one thread of its own (:attr:`ToolCache.io`): within a
process the database is never contended, so no call sleeps in SQLite's lock wait. Writes
from the event loop are queued (:meth:`ToolCache.set_later`) and nobody waits for them; a
read in this process, :meth:`ToolCache.drain` and :meth:`ToolCache.close` come after the
writes queued before them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from cache.codec import CorruptEntry, decode, encode
from cache.errors import ConfigError
from cache.serial import SerialThread

ENV_VAR = "REFSEG_CACHE_DIR"
DEFAULT_DIR = Path.home() / ".cache" / "refseg-loop"
SIZE_LIMIT = 8 * 2**30
LOCK_TIMEOUT_S = 5.0  # longest wait for another process's lock on the database
# What a cache database that cannot be used raises: SQLite errors (full, read-only, locked
# reads, a damaged file), diskcache's Timeout (locked writes).
CACHE_FAILURES = (sqlite3.Error, diskcache.Timeout)

log = logging.getLogger(__name__)


Arrays = dict[str, np.ndarray]
Record = tuple[Arrays, dict[str, Any]]


class CacheUnavailable(ConfigError):
    """The cache folder cannot be opened; the message says what to do (``--no-cache``)."""


# Key of the JSON meta entry that records what producing a value cost (seconds, tokens, USD),
# so a hit can report its cold cost; records written before it existed lack it.
COST_META = "__refseg_cost__"


def default_cache_dir() -> Path:
    """``$REFSEG_CACHE_DIR``, else ``~/.cache/refseg-loop``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_DIR


class UnsafeEntry(CorruptEntry):
    """A row stored in a mode that would need pickle or leaves the cache folder."""


class SafeDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache ``Disk`` for ``str`` keys and ``bytes`` values only."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError("refseg cache keys are str")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeEntry("pickled key in cache database")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError("refseg cache values are bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise UnsafeEntry(f"cache row in mode {mode} refused (only raw bytes are read)")
        if filename is not None:
            root = os.path.realpath(self._directory)
            full = os.path.realpath(os.path.join(self._directory, filename))
            if os.path.commonpath([root, full]) != root:
                raise UnsafeEntry("cache row points outside the cache folder")
        return super().fetch(mode, filename, value, read)


@dataclass
class CacheStats:
    directory: str
    entries: int
    size_bytes: int
    hits: int
    misses: int
    corrupt: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ToolCache:
    """Bytes-valued store keyed by :func:`cache.keys.make_key`.

    Safe to share between threads and processes (diskcache uses SQLite with WAL).
    Hit/miss counts persist in the cache folder so ``refseg cache stats`` can show them.

    Args:
        directory: the cache folder (``None``: :func:`default_cache_dir`).
        size_limit: bytes kept before diskcache evicts.
        timeout_s: longest wait for a database locked by another process.

    Raises:
        CacheUnavailable: the folder or its database cannot be opened.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        size_limit: int = SIZE_LIMIT,
        timeout_s: float = LOCK_TIMEOUT_S,
    ):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _probe_lock(self.directory / "cache.db", timeout_s)
            self._cache = diskcache.Cache(
                str(self.directory), disk=SafeDisk, size_limit=size_limit, statistics=True, timeout=timeout_s
            )
        except (*CACHE_FAILURES, OSError) as exc:
            raise CacheUnavailable(
                f"cannot open the tool cache in {self.directory} ({_reason(exc)}); fix the folder, "
                "pick another --cache-dir, or run with --no-cache"
            ) from None
        self.corrupt = 0
        self.errors = 0  # reads and writes that failed (the first one turned the cache off)
        self.degraded: str | None = None  # why the cache was turned off, or None
        self.io = SerialThread("refseg-cache")  # the one thread this process reads and writes on
        self._queued_lock = threading.Lock()
        self._queued = 0  # writes queued on ``io`` and not done yet

    def health(self) -> dict[str, Any]:
        """``{"degraded": why or None, "errors": failed reads and writes, "corrupt": entries
        dropped}`` for a run's records (after the queued writes)."""
        self._settle()
        return {"degraded": self.degraded, "errors": self.errors, "corrupt": self.corrupt}

    def _failed(self, action: str, exc: BaseException) -> None:
        """Count a failed read or write; the first one turns the cache off, with one warning."""
        self.errors += 1
        if self.degraded is None:
            self.degraded = (
                f"tool cache in {self.directory}: a {action} failed ({_reason(exc)}); caching is "
                "off for the rest of this run (outputs are computed, results are unchanged)"
            )
            log.warning("%s", self.degraded)

    def _settle(self) -> None:
        """Wait for the queued writes, so what this process wrote is there to read."""
        if self._queued:
            self.io.wait_idle()

    def get(self, key: str) -> Record | None:
        """The decoded value, or ``None`` on a miss; a damaged entry is dropped and missed,
        and a cache that cannot be read is a miss."""
        self._settle()
        if self.degraded is not None:
            return None
        try:
            blob = self._cache.get(key, default=None)
        except (UnsafeEntry, OSError):
            blob = b"damaged"
        except CACHE_FAILURES as exc:
            self._failed("read", exc)
            return None
        if blob is None:
            return None
        try:
            return decode(blob)
        except CorruptEntry:
            self.discard(key)
            return None

    def set(self, key: str, arrays: Arrays, meta: dict[str, Any]) -> None:
        """Store a value; a cache that cannot be written only warns (see module doc)."""
        self._put(key, encode(arrays, meta))

    def set_later(self, key: str, record: Callable[[], Record]) -> None:
        """Queue a write on :attr:`io` and return at once; ``record()`` (building the value's
        arrays and meta) runs there too. One that raises turns the cache off like a failed
        write, with its warning."""
        if self.degraded is not None:  # off: nothing to encode
            return
        with self._queued_lock:
            self._queued += 1
        try:
            self.io.submit(self._write_record, key, record)
        except RuntimeError:  # the interpreter is exiting: no thread to write on (a memo, not a result)
            with self._queued_lock:
                self._queued -= 1

    def _write_record(self, key: str, record: Callable[[], Record]) -> None:
        try:
            try:
                arrays, meta = record()
            except Exception as exc:  # an output that cannot be encoded: not a reason to fail the run
                self._failed("write", exc)
                return
            self.set(key, arrays, meta)
        finally:
            with self._queued_lock:
                self._queued -= 1

    async def drain(self) -> None:
        """Wait, without blocking the event loop, until the queued writes are done."""
        if self._queued:
            await self.io.run(lambda: None)

    def set_raw(self, key: str, blob: bytes) -> None:
        """Store bytes as they are (tests use it to plant damaged entries)."""
        self._put(key, blob)

    def _put(self, key: str, blob: bytes) -> None:
        if self.degraded is not None:
            return
        try:
            self._cache.set(key, blob)
        except (*CACHE_FAILURES, OSError) as exc:
            self._failed("write", exc)

    def discard(self, key: str) -> None:
        """Drop an entry that did not decode (damaged, or another layout); counted in ``corrupt``."""
        self.corrupt += 1
        self.delete(key)

    def delete(self, key: str) -> None:
        self._settle()
        if self.degraded is not None:
            return
        try:
            with contextlib.suppress(UnsafeEntry):
                self._cache.delete(key)
        except (*CACHE_FAILURES, OSError) as exc:
            self._failed("write", exc)

    def stored_keys(self) -> list[str]:
        """Every key stored, oldest first."""
        self._settle()
        return [str(key) for key in self._cache.iterkeys()]

    def __contains__(self, key: str) -> bool:
        self._settle()
        return key in self._cache

    def stats(self) -> CacheStats:
        self._settle()
        hits, misses = self._cache.stats()
        return CacheStats(
            directory=str(self.directory),
            entries=len(self._cache),
            size_bytes=int(self._cache.volume()),
            hits=int(hits),
            misses=int(misses),
            corrupt=self.corrupt,
        )

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        self._settle()
        n = len(self._cache)
        self._cache.clear(retry=True)  # `refseg cache clear` waits for other processes
        self._cache.stats(reset=True)
        return n

    def close(self) -> None:
        """Finish the queued writes, then close the database (on every thread that opened it)."""
        if self.io.started:
            self.io.submit(self._cache.close)
            self.io.shutdown()
        self._cache.close()

    def __enter__(self) -> ToolCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _probe_lock(db: Path, timeout_s: float) -> None:
    """Take and release the database's write lock, waiting at most ``timeout_s``.

    diskcache's own start-up retries a locked database for 60 seconds; this makes the wait
    the cache's timeout instead. Raises ``sqlite3.OperationalError`` when it is locked.
    """
    if not db.exists():
        return
    con = sqlite3.connect(db, timeout=timeout_s, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    finally:
        con.close()


def _reason(exc: BaseException) -> str:
    """A short reason for a cache failure (diskcache's Timeout has no message)."""
    if isinstance(exc, diskcache.Timeout):
        return "the database is locked by another process"
    return str(exc) or type(exc).__name__
