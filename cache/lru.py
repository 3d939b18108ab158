"""A small thread-safe LRU mapping: the one in-memory cache every layer uses.

Tools keep model-side results here (SAM image embeddings, CLIP embeddings, region
features) and the invoker keeps decoded tool outputs; the disk cache
(:class:`cache.store.ToolCache`) sits behind it. Tools run in worker threads, so every
operation takes the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; adding one more evicts the least recently used.

    ``None`` means "not cached": do not store ``None`` values.

    Args:
        maxsize: capacity, at least 1.

    Raises:
        ValueError: ``maxsize`` is below 1.
    """

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"LRU maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), else ``None``."""
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` as the most recently used entry, evicting the oldest beyond maxsize."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove ``key`` and return its value, else ``None``."""
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Membership only: does not count as a use."""
        with self._lock:
            return key in self._data
