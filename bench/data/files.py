"""Data set files: images read from a data set's folder (and only from there), file digests.

A data set whose rows name image files (a parquet row's ``path``, an annotation file's
``image``) reads them from its own folder: a path that leads outside it (``../x.png``,
``/etc/shadow``, a symbolic link out) fails that example, unless ``--allow-image-paths-outside``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bench.records import DataFile
from tools.errors import InputError
from tools.images import decode_image
from tools.types import Image

OUTSIDE_FLAG = "--allow-image-paths-outside"


def image_path(path: str, root: Path | None, allow_outside: bool, name: str) -> Path:
    """Where a row's image ``path`` points: inside ``root`` (the data set's folder) only.

    Raises:
        InputError: the path leads outside ``root`` (or there is no local folder), and
            ``allow_outside`` is off.
    """
    candidate = Path(path).expanduser()
    if root is not None and not candidate.is_absolute():
        candidate = root / candidate
    if allow_outside:
        return candidate
    if root is None:
        raise InputError(
            f"{name}: image path {path!r} of a hub data set is not read; pass {OUTSIDE_FLAG} to read it"
        )
    resolved = candidate.resolve()  # follows symbolic links: a link out of the folder is out
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(
            f"{name}: image path {path!r} is outside the data set folder {root}; "
            f"pass {OUTSIDE_FLAG} to read it"
        )
    return resolved


@dataclass(frozen=True, eq=False)
class FileImage:
    """An example's image as a file of the data set's folder, read when the example runs.

    ``path`` is as the data set names it, relative to ``root``; it is checked to stay inside
    ``root`` (see :func:`image_path`) when it is read, so the error fails that example only.
    """

    path: str
    root: Path
    name: str
    allow_outside: bool = False

    def raw(self) -> bytes:
        """The encoded bytes (what a Ray worker receives)."""
        file = image_path(self.path, self.root, self.allow_outside, self.name)
        if not file.is_file():
            raise InputError(f"{self.name}: no image file {self.path!r} in {self.root}")
        return file.read_bytes()

    def load(self) -> Image:
        return decode_image(self.raw(), name=self.name)


def file_digest(path: Path) -> DataFile:
    """A file's size and SHA-256 (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return DataFile(path=str(path), bytes=path.stat().st_size, sha256=h.hexdigest())
