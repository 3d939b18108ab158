"""COCO run-length encoding of binary masks (``{"size": [H, W], "counts": ...}``).

COCO RLE walks the mask in column-major (Fortran) order and alternates runs of 0s and 1s,
starting with 0s. ``counts`` is either the compressed string (what RefCOCO-M stores; bytes
or str) or the uncompressed list of run lengths.

Encoding uses pycocotools. Decoding parses the runs here and checks them: pycocotools'
decoder trusts ``counts``, and a short or corrupt string comes back as uninitialised memory
(values like 746 in a 3x5 mask) instead of an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from bench.data_errors import DatasetError

RLE = Mapping[str, Any]


def _size_of(rle: RLE) -> tuple[int, int]:
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise DatasetError(f"an RLE mask needs 'size' and 'counts' keys, got {_short(rle)}")
    size = rle["size"]
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DatasetError(f"RLE 'size' must be [H, W], got {_short(size)}") from None
    if h < 0 or w < 0:
        raise DatasetError(f"RLE 'size' must be non-negative, got {[h, w]}")
    return h, w


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_counts(counts: str | bytes | bytearray) -> np.ndarray:
    """Run lengths ``(K,) int64`` of a compressed COCO counts string (pycocotools' format).

    Each run is a little-endian base-32 number in chars ``0x30..0x6f`` (bit 5 = "more
    chars follow", bit 4 of the last char = sign); runs after the second are stored as the
    difference to the run two places back. Vectorised: a 12k-char mask parses in ~0.1 ms.

    Raises:
        DatasetError: a character outside the alphabet or a truncated number.
    """
    data = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((c < 0) | (c >= 64))
    if bad.size:
        p = int(bad[0])
        raise DatasetError(f"RLE counts has an invalid character {chr(data[p])!r} at {p}")
    last = (c & 0x20) == 0  # the last char of each number
    if not last[-1]:
        raise DatasetError("RLE counts string ends in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) >= 12:  # 12 chars = 60 bits: more would overflow int64
        raise DatasetError("RLE counts has a run too long for any image; the mask is corrupt")
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    k = np.arange(c.size) - starts[group]  # position of each char within its number
    x = np.zeros(ends.size, dtype=np.int64)
    np.add.at(x, group, (c & 0x1F) << (5 * k))
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.int64(1) << (5 * (ends[negative] - starts[negative] + 1))
    # Undo the delta coding: runs[i] = x[i] + runs[i - 2] for i > 2, i.e. running sums
    # over indices 1, 3, 5, ... and over 2, 4, 6, ...
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def _runs_of(rle: RLE) -> tuple[int, int, np.ndarray]:
    h, w = _size_of(rle)
    counts = rle["counts"]
    if isinstance(counts, str | bytes | bytearray):
        runs = parse_counts(counts)
    elif isinstance(counts, list | tuple | np.ndarray):
        try:
            runs = np.asarray(counts, dtype=np.int64).ravel()
        except (TypeError, ValueError, OverflowError):
            raise DatasetError(f"RLE counts list must hold integers, got {_short(counts)}") from None
    else:
        raise DatasetError(f"RLE counts must be a string, bytes or a list, got {type(counts).__name__}")
    if (runs < 0).any():
        raise DatasetError("RLE counts has a negative run length; the mask is corrupt")
    total = int(runs.sum())
    if total != h * w:
        raise DatasetError(
            f"RLE runs cover {total} pixels but size [{h}, {w}] ([H, W]) has {h * w}; the mask is corrupt "
            "or its size is wrong"
        )
    return h, w, runs


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes or uncompressed list) to ``(H, W) bool``.

    Raises:
        DatasetError: the RLE is malformed or its runs do not cover ``H * W`` pixels.
    """
    h, w, runs = _runs_of(rle)
    values = np.arange(runs.size) % 2 == 1  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, runs)
    # Column-major: the flat order walks down each column first.
    return np.ascontiguousarray(flat.reshape(w, h).T)


def rle_area(rle: RLE) -> int:
    """Number of foreground pixels, from the runs alone (no decode)."""
    _, _, runs = _runs_of(rle)
    return int(runs[1::2].sum())


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an ``(H, W)`` mask (any dtype; nonzero = foreground) as a JSON-able COCO RLE.

    Returns:
        ``{"size": [H, W], "counts": str}`` with the compressed counts string.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"encode_rle needs an (H, W) mask, got shape {arr.shape}")
    fortran = np.asfortranarray(arr.astype(np.uint8) != 0, dtype=np.uint8)
    out = coco_mask.encode(fortran)
    counts = out["counts"]
    return {
        "size": [int(v) for v in out["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
    }
