"""A small batching queue for image encoders: gather images that calls are waiting on.

A tool's calls run one at a time on the device thread (:func:`tools.base.run_on_device`);
the others wait for it. A call announces its image here *before* it waits
(:meth:`EncodeQueue.waiting`), so when the device thread needs an embedding it can encode
the other waiting images in the same forward (:meth:`EncodeQueue.batch_for`). Their calls
then find the embedding ready. Nobody waits for a batch to fill: a lone call is encoded
alone at once, so batching only ever uses work that is already queued.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.types import Image


class EncodeQueue:
    """Images whose embeddings waiting calls will need, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: OrderedDict[str, tuple[Image, int]] = OrderedDict()

    @contextmanager
    def waiting(self, image: Image) -> Iterator[None]:
        """Announce ``image`` for as long as the ``with`` block (the call) lasts."""
        with self._lock:
            _, count = self._waiting.get(image.digest, (image, 0))
            self._waiting[image.digest] = (image, count + 1)
        try:
            yield
        finally:
            with self._lock:
                _, count = self._waiting[image.digest]
                if count > 1:
                    self._waiting[image.digest] = (image, count - 1)
                else:
                    del self._waiting[image.digest]

    def batch_for(self, image: Image, limit: int, done: Callable[[str], bool]) -> list[Image]:
        """``image`` first, then up to ``limit - 1`` other waiting images not ``done`` yet."""
        batch = [image]
        with self._lock:
            for digest, (other, _) in self._waiting.items():
                if len(batch) >= limit:
                    break
                if digest != image.digest and not done(digest):
                    batch.append(other)
        return batch

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)
