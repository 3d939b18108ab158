"""Parquet data sets through the ``datasets`` library: local files and folders or the hub.

A local parquet file or folder (or a hub data set) is opened as a memory-mapped
``datasets.Dataset``: rows are read in batches as they are streamed, an image column is
read only when an example's image is loaded, and nothing is decoded up front. Adapters of
parquet layouts (:mod:`bench.data.refcocom`) build on these helpers.

A row whose image has no bytes but a ``path`` is read from the data set's own folder (the
parquet file's folder, or the folder given) only (:func:`bench.data.files.image_path`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.files import image_path
from bench.data_errors import DatasetError
from tools.errors import InputError
from tools.images import decode_image
from tools.types import Image

HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")
BATCH_ROWS = 64  # rows read at a time while streaming


def parquet_files(path: Path, split: str | None) -> list[Path]:
    """The parquet files of a file or folder; in a folder laid out like a hub repo
    (``data/validation-00000-of-00002.parquet``), the split's shards when there are any.

    Raises:
        DatasetError: a folder with no ``.parquet`` file.
    """
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise DatasetError(f"{path}: the folder has no .parquet files")
    in_split = [p for p in files if split and p.name.startswith((f"{split}-", f"{split}."))]
    return in_split or files


def has_columns(path: Path, required: Iterable[str]) -> bool:
    """Whether ``path`` (a parquet file or folder) holds parquet with every ``required`` column:
    how an adapter recognises a local copy of its data set."""
    try:
        files = parquet_files(path, None)
    except DatasetError:
        return False
    columns = parquet_columns(files[0])
    return columns is not None and set(required) <= columns


def parquet_columns(path: Path) -> set[str] | None:
    """The top-level column names of a parquet file (from its footer), or ``None`` when it
    is not a readable parquet file."""
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(path).names)
    except Exception:  # not parquet, unreadable: the adapter does not detect it
        return None


def local_root(source: str) -> Path | None:
    """The data set's own folder for a local source (``None`` for a hub name)."""
    local = Path(source).expanduser()
    if not local.exists():
        return None
    return local if local.is_dir() else local.parent


@contextlib.contextmanager
def hub_logs_quiet() -> Iterator[None]:
    """The hub clients' warnings off meanwhile (``datasets``, ``huggingface_hub``: a retry line
    per attempt on an unreachable hub): what went wrong is the one-line error raised after."""
    loggers = [logging.getLogger(name) for name in ("datasets", "huggingface_hub")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def open_table(source: str, split: str | None, cache_dir: str | None) -> tuple[Any, list[Path]]:
    """``(datasets.Dataset, local files read)`` for a local parquet file/folder or a hub name.

    Raises:
        DatasetError: no such file, not parquet, or the hub cannot serve it.
    """
    import datasets  # heavy import, only when a data set is actually opened

    path = Path(source).expanduser()
    if path.exists():
        files = parquet_files(path, split)
        try:
            table = datasets.load_dataset(
                "parquet", data_files=[str(f) for f in files], split="train", cache_dir=cache_dir
            )
        except Exception as exc:  # pyarrow/datasets raise many types for a bad file
            raise DatasetError(f"{path}: cannot read it as parquet ({type(exc).__name__}: {exc})") from None
        return table, files
    if source.endswith(".parquet") or source.startswith((".", "/", "~")) or not HUB_NAME.fullmatch(source):
        raise DatasetError(f"{source}: no such file or folder; pass a parquet file or folder")
    try:
        with hub_logs_quiet():
            return datasets.load_dataset(source, split=split, cache_dir=cache_dir), []
    except Exception as exc:  # offline, unknown repo, unknown split, ...
        raise DatasetError(
            f"cannot load {source!r} (split {split!r}) from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}); check the name and your network, or pass a local "
            "parquet file or folder"
        ) from None


def undecoded_images(table: Any, column: str, source: str) -> Any:
    """The ``column`` of ``table`` as ``{bytes, path}`` records (no image decoding).

    Raises:
        DatasetError: the column is not an image column.
    """
    import datasets

    try:
        return table.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    except Exception as exc:
        raise DatasetError(f"{source}: column {column!r} is not an image ({exc})") from None


def iter_rows(
    table: Any, columns: list[str], rows: list[int] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row index, record)`` of ``table`` (only ``columns``), in order, read in batches of
    :data:`BATCH_ROWS` rows; with ``rows``, only those."""
    view = table.select_columns(columns)
    positions = list(range(len(view))) if rows is None else rows
    for start in range(0, len(positions), BATCH_ROWS):
        chunk = positions[start : start + BATCH_ROWS]
        batch = view[chunk[0] : chunk[-1] + 1] if rows is None else view.select(chunk)[:]
        for offset, row in enumerate(chunk):
            yield row, {c: batch[c][offset] for c in columns}


def struct_fields(feature: Any) -> dict[str, Any] | None:
    """The field dict of a struct feature, looking through list wrappers; None if not one."""
    while not isinstance(feature, dict):
        if isinstance(feature, list | tuple) and len(feature) == 1:
            feature = feature[0]
        elif hasattr(feature, "feature"):  # datasets List / Sequence
            feature = feature.feature
        else:
            return None
    return feature


@dataclass(frozen=True, eq=False)
class ArrowImage:
    """Row ``row`` of a table whose image column is not decoded (see :func:`undecoded_images`).

    ``root`` is the data set's folder (``None`` for a hub data set): an image ``path`` is read
    only from inside it, unless ``allow_outside``.
    """

    table: Any
    row: int
    name: str
    root: Path | None = None
    allow_outside: bool = False
    column: str = "image"

    def raw(self) -> bytes:
        """The encoded image bytes (read from ``path`` when the row has no bytes)."""
        record = self.table[self.row][self.column]
        if not record:
            raise InputError(f"{self.name}: the row has no image")
        data = record.get("bytes") if isinstance(record, Mapping) else None
        if data:
            return bytes(data)
        path = record.get("path") if isinstance(record, Mapping) else None
        if not path:
            raise InputError(f"{self.name}: the row has no image bytes and no path")
        file = image_path(str(path), self.root, self.allow_outside, self.name)
        if not file.is_file():
            raise InputError(f"{self.name}: the row has no image bytes and no readable path ({path!r})")
        return file.read_bytes()

    def load(self) -> Image:
        return decode_image(self.raw(), name=self.name)
