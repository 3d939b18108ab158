"""Tool-output memoization on diskcache, with a Disk that refuses pickle.

diskcache pickles anything that is not ``bytes``/``str``/number, and unpickles any row
whose mode says so. :class:`SafeDisk` only writes and reads raw keys and byte values,
so a tampered cache database can at worst yield a miss, never run code.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from cache.codec import CorruptEntry, decode, encode

ENV_VAR = "REFSEG_CACHE_DIR"
DEFAULT_DIR = Path.home() / ".cache" / "refseg-loop"
SIZE_LIMIT = 8 * 2**30
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
    """

    def __init__(self, directory: str | Path | None = None, size_limit: int = SIZE_LIMIT):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(
            str(self.directory), disk=SafeDisk, size_limit=size_limit, statistics=True
        )
        self.corrupt = 0

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The decoded value, or ``None`` on a miss; a damaged entry is dropped and missed."""
        try:
            blob = self._cache.get(key, default=None, retry=True)
        except (UnsafeEntry, OSError):
            blob = b"damaged"
        if blob is None:
            return None
        try:
            return decode(blob)
        except CorruptEntry:
            self.corrupt += 1
            self.delete(key)
            return None

    def set(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._cache.set(key, encode(arrays, meta), retry=True)

    def set_raw(self, key: str, blob: bytes) -> None:
        """Store bytes as they are (tests use it to plant damaged entries)."""
        self._cache.set(key, blob, retry=True)

    def delete(self, key: str) -> None:
        with contextlib.suppress(UnsafeEntry):
            self._cache.delete(key, retry=True)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def stats(self) -> CacheStats:
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
        n = len(self._cache)
        self._cache.clear(retry=True)
        self._cache.stats(reset=True)
        return n

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> ToolCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
