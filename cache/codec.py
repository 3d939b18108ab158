"""Cache values as bytes: an npz of arrays plus JSON metadata, framed with a checksum.

Never pickle: ``np.load(allow_pickle=False)`` refuses object arrays, and JSON cannot carry
code, so a cache directory copied from elsewhere cannot run anything. Nor can an entry
inflate: :func:`encode` stores the npz members uncompressed, so :func:`decode` refuses a
compressed member and any member whose array header declares more bytes than it holds,
before a single array is allocated (a 1 MB entry cannot become a 1 GiB array).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from typing import Any

import numpy as np

MAGIC = b"RSC1"
_META = "__meta__"


class CorruptEntry(ValueError):
    """A cache value failed its checksum or could not be decoded."""


def encode(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """Frame ``arrays`` and ``meta`` as ``MAGIC + sha256(payload) + payload``."""
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; cache values must be plain arrays")
    buf = io.BytesIO()
    meta_bytes = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    members: dict[str, Any] = {_META: meta_bytes, **{k: np.asarray(v) for k, v in arrays.items()}}
    np.savez(buf, **members)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`encode`; raises :class:`CorruptEntry` on any damage."""
    if not isinstance(blob, bytes) or len(blob) < len(MAGIC) + 32 or not blob.startswith(MAGIC):
        raise CorruptEntry("not a refseg cache value")
    digest, payload = blob[len(MAGIC) : len(MAGIC) + 32], blob[len(MAGIC) + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptEntry("checksum mismatch (truncated or modified entry)")
    check_sizes(payload)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise CorruptEntry(f"undecodable entry: {exc}") from None
    return arrays, meta


def check_sizes(payload: bytes) -> None:
    """Refuse an npz whose arrays would take more memory than the entry's own bytes.

    Raises:
        CorruptEntry: not a zip, a compressed member, or an array header declaring more
            bytes than its member holds.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(payload):
                    raise CorruptEntry(f"member {info.filename!r} is compressed or oversized")
                with archive.open(info) as fh:
                    declared = _declared_bytes(fh)
                if declared > info.file_size:
                    raise CorruptEntry(
                        f"member {info.filename!r} declares {declared} bytes but holds {info.file_size}"
                    )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        if isinstance(exc, CorruptEntry):
            raise
        raise CorruptEntry(f"undecodable entry: {exc}") from None


def _declared_bytes(fh: Any) -> int:
    """The bytes an ``.npy`` stream's header says its array takes."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _fortran, dtype = read_header(fh)
    return math.prod(int(n) for n in shape) * int(dtype.itemsize)
