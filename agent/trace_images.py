"""The images a VLM was shown, stored beside the trace: ``vlm_images/<sha256>.<ext>``.

A file's name is the digest of its bytes, so an image shown many times (the same picture in
every turn of a conversation, every expression of one image) is stored once, and a name
says what it holds: the viewer serves only names of this shape from this folder. Files are
written whole (a temporary file, then a rename), so a reader never sees half an image. A
folder that cannot be written (a full disk) turns image storing off with one warning; the
trace then says which images are missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

VLM_IMAGE_DIR = "vlm_images"
IMAGE_EXTENSIONS = ("png", "jpg", "webp")
_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp)$")


def image_name(data: bytes, ext: str) -> str:
    """``<sha256 of data>.<ext>``."""
    return f"{hashlib.sha256(data).hexdigest()}.{ext}"


def is_image_name(name: str) -> bool:
    """Whether ``name`` is a name :func:`image_name` gives (no path, a known extension)."""
    return bool(_NAME.match(name))


def image_ref(name: str) -> str:
    """How a trace event refers to a stored image: ``vlm_images/NAME``, relative to the trace."""
    return f"{VLM_IMAGE_DIR}/{name}"


class ImageFolder:
    """Writes images into ``folder`` (created on the first image), each name once.

    Safe to call from several threads; a failure turns it off (``failure`` says why).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.failure: str | None = None
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def keep(self, name: str, data: bytes) -> bool:
        """Store ``data`` as ``name`` unless it is there already; False when it cannot be stored."""
        if not is_image_name(name):
            return False
        with self._lock:
            if self.failure is not None:
                return False
            if name in self._known:
                return True
            try:
                self._write(name, data)
            except OSError as exc:
                self.failure = f"cannot write {self.folder / name}: {exc.strerror or exc}"
                log.warning("%s; the VLM's images are not stored for the rest of this run", self.failure)
                return False
            self._known.add(name)
            return True

    def _write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        if path.is_file():  # an earlier invocation (or another process) stored it
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
