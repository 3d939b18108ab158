"""Checks on a cache record before it becomes a tool output: sizes before allocation, values.

A record comes from the disk cache. Its checksum proves only that storage did not damage it,
not that this version of this tool wrote it, nor that its writer was honest. So a decoder
checks the record against itself before allocating anything from it (a stored shape must
match the bytes behind it: a 1.6 KB entry cannot inflate into a 381 MiB mask) and checks that
its numbers are finite and in range; :func:`tools.output_fit.check_fits` then checks the
decoded output against what the call knows (the image's size, the number of candidates).

Every check raises ``ValueError``: to the invoker, a record that fails one is a cache miss
(dropped, counted and recomputed), never a wrong answer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PROB_SUM_TOLERANCE = 1e-3  # a softmax stored as float32 sums to 1 within ~1e-6


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def stored_shape(meta: dict[str, Any]) -> tuple[int, int, int]:
    """``meta["shape"]`` as ``(N, H, W)``: three non-negative integers.

    Raises:
        ValueError: anything else (floats, strings, negative sizes, another length).
    """
    shape = meta.get("shape")
    if not isinstance(shape, list | tuple) or len(shape) != 3:
        raise ValueError(f"stored mask shape {shape!r} is not three non-negative integers")
    if not all(_is_int(v) and v >= 0 for v in shape):
        raise ValueError(f"stored mask shape {shape!r} is not three non-negative integers")
    n, h, w = (int(v) for v in shape)
    return n, h, w


def unpack_masks(packed: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``(N, H, W) bool`` masks from their bit-packed rows, refused unless the packed array is
    exactly what ``shape`` needs: the allocation is then at most 8 bits per stored bit.

    Raises:
        ValueError: another dtype, or a packed shape that does not match ``shape``.
    """
    n, h, w = shape
    want = (n, h, (w + 7) // 8)
    if packed.dtype != np.uint8 or packed.shape != want:
        raise ValueError(f"packed masks {packed.shape} {packed.dtype} do not hold {n}x{h}x{w} masks")
    return np.unpackbits(packed, axis=-1, count=w).astype(bool)


def finite_rows(name: str, array: Any, rows: int, cols: int | None = None) -> np.ndarray:
    """``array`` as a float array of ``rows`` (by ``cols``) finite values.

    Raises:
        ValueError: another shape, a non-numeric dtype, NaN or infinity.
    """
    arr = np.asarray(array)
    want = (rows,) if cols is None else (rows, cols)
    if arr.shape != want or arr.dtype.kind not in "fiu":
        raise ValueError(f"array {name!r} is {arr.shape} {arr.dtype}, expected {want} numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"array {name!r} holds NaN or infinite values")
    return arr


def check_areas(areas: Any, masks: np.ndarray) -> None:
    """Stored areas are the masks' pixel counts.

    Raises:
        ValueError: they are not integers, or differ from the masks.
    """
    arr = np.asarray(areas)
    if arr.dtype.kind not in "iu" or arr.shape != (masks.shape[0],):
        raise ValueError(f"areas are {arr.shape} {arr.dtype}, expected {masks.shape[0]} integers")
    if not np.array_equal(arr, masks.sum(axis=(1, 2), dtype=np.int64)):
        raise ValueError("stored areas differ from the masks' pixel counts")


def check_probabilities(probs: np.ndarray) -> None:
    """Probabilities in [0, 1] that sum to 1 (none at all is fine).

    Raises:
        ValueError: a value out of range, or a sum that is not 1.
    """
    if probs.size == 0:
        return
    if probs.min() < 0.0 or probs.max() > 1.0 or abs(float(probs.sum()) - 1.0) > PROB_SUM_TOLERANCE:
        raise ValueError("stored probabilities are not a distribution (out of [0, 1], or not summing to 1)")


def text_field(meta: dict[str, Any], key: str, default: str | None = None) -> str:
    """``meta[key]`` as a string (``default`` when absent and one is given).

    Raises:
        ValueError: absent without a default, or not a string.
    """
    value = meta.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"record field {key!r} is {type(value).__name__}, expected text")
    return value


def count_field(meta: dict[str, Any], key: str) -> int:
    """``meta[key]`` as a non-negative integer (0 when absent)."""
    value = meta.get(key, 0)
    if not _is_int(value) or value < 0:
        raise ValueError(f"record field {key!r} is {value!r}, expected a non-negative integer")
    return int(value)


def amount_field(meta: dict[str, Any], key: str, *, positive: bool = False) -> float:
    """``meta[key]`` as a finite non-negative number (0 when absent); ``positive``: above 0."""
    value = meta.get(key, 0.0)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise ValueError(f"record field {key!r} is {value!r}, expected a finite {sign} number")
    return float(value)


def proposals_fields(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    """:class:`tools.types.Proposals` fields from a record, every array checked (the digest is
    the caller's: it hashes the packed masks)."""
    shape = stored_shape(meta)
    masks = unpack_masks(arrays["masks"], shape)
    n = shape[0]
    check_areas(arrays["areas"], masks)
    origins = meta.get("origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ValueError("stored origins are not a list of text")
    return {
        "masks": masks,
        "boxes": finite_rows("boxes", arrays["boxes"], n, 4),
        "scores": finite_rows("scores", arrays["scores"], n),
        "stability": finite_rows("stability", arrays["stability"], n),
        "areas": arrays["areas"],
        "source": text_field(meta, "source"),
        "origins": np.array(origins, dtype=str),
    }


def ranking_fields(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    """:class:`tools.types.Ranking` fields: finite scores and a distribution of one length."""
    n = len(arrays["scores"])
    probs = finite_rows("probs", arrays["probs"], n)
    check_probabilities(probs)
    return {
        "scores": finite_rows("scores", arrays["scores"], n),
        "probs": probs,
        "query": text_field(meta, "query"),
        "temperature": amount_field(meta, "temperature", positive=True),
        "proposals_digest": text_field(meta, "proposals_digest", ""),
        "source": text_field(meta, "source", ""),
    }


REFINEMENT_FIELDS = frozenset({"query", "rationale", "source", "tokens_in", "tokens_out", "usd", "no_match"})


def refinement_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """:class:`tools.types.Refinement` fields: text, counts and a finite price."""
    unknown = set(meta) - REFINEMENT_FIELDS
    if unknown:
        raise ValueError(f"unknown record fields {sorted(unknown)}")
    return {
        "query": text_field(meta, "query"),
        "rationale": text_field(meta, "rationale", ""),
        "source": text_field(meta, "source", ""),
        "tokens_in": count_field(meta, "tokens_in"),
        "tokens_out": count_field(meta, "tokens_out"),
        "usd": amount_field(meta, "usd"),
        "no_match": _flag(meta, "no_match"),
    }


def _flag(meta: dict[str, Any], key: str) -> bool:
    """A boolean field (``False`` when absent)."""
    value = meta.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"record field {key!r} is not true or false")
    return value
