"""Known checkpoints: where each weight file comes from and how to verify it.

The SAM hashes and sizes are those of the official files on ``dl.fbaipublicfiles.com``
(the same values are pinned independently by several public projects, e.g. micro-sam's
``_CHECKSUMS`` and ComfyUI model lists).

File hashing is cached in-process by ``(path, mtime, size)``: the fingerprint of a 2.5 GB
ViT-H file is computed once per process, not once per tool call.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from cache.errors import ConfigError

SAM_URL_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class CheckpointInfo:
    """One downloadable weight file.

    Attributes:
        name: registry name, e.g. ``sam_vit_b``.
        family: model family (``sam``).
        model_type: the family's architecture key (``vit_b``).
        filename: file name on disk (the official one).
        url: where to download it.
        sha256: expected sha256 hex digest, or ``None`` when unknown (not verified then).
        size: expected size in bytes, or ``None`` when unknown.
    """

    name: str
    family: str
    model_type: str
    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None


def _sam(model_type: str, filename: str, sha256: str, size: int) -> CheckpointInfo:
    return CheckpointInfo(
        name=f"sam_{model_type}",
        family="sam",
        model_type=model_type,
        filename=filename,
        url=SAM_URL_BASE + filename,
        sha256=sha256,
        size=size,
    )


KNOWN_CHECKPOINTS: dict[str, CheckpointInfo] = {
    info.name: info
    for info in (
        _sam(
            "vit_b",
            "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            375_042_383,
        ),
        _sam(
            "vit_l",
            "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            1_249_524_607,
        ),
        _sam(
            "vit_h",
            "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            2_564_550_879,
        ),
    )
}

SAM_MODEL_TYPES: tuple[str, ...] = tuple(
    info.model_type for info in KNOWN_CHECKPOINTS.values() if info.family == "sam"
)


def known_checkpoints() -> list[CheckpointInfo]:
    """Every registered checkpoint, in registry order."""
    return list(KNOWN_CHECKPOINTS.values())


def lookup(name: str, family: str = "sam") -> CheckpointInfo:
    """Find a checkpoint by registry name, model type or file name.

    ``"sam_vit_b"``, ``"vit_b"``, ``"sam:vit_b"``, ``"sam/vit_b"`` and
    ``"sam_vit_b_01ec64.pth"`` all name the same file; ``"sam"`` alone means ``sam_vit_b``;
    ``"default"`` means ``vit_h`` as in segment-anything's own registry.

    Raises:
        ConfigError: the name is not registered (the message lists the known names).
    """
    key = name.strip().lower().replace(":", "_").replace("/", "_")
    if key == family:
        key = f"{family}_vit_b"
    if key == "default" and family == "sam":
        key = "sam_vit_h"
    candidates = (key, f"{family}_{key}")
    for candidate in candidates:
        if candidate in KNOWN_CHECKPOINTS:
            return KNOWN_CHECKPOINTS[candidate]
    for info in KNOWN_CHECKPOINTS.values():
        if info.filename.lower() == key:
            return info
    known = ", ".join(f"{i.name} ({i.model_type})" for i in KNOWN_CHECKPOINTS.values())
    raise ConfigError(f"unknown checkpoint {name!r}; known checkpoints: {known}")


def sam_checkpoint_info(model_type: str) -> CheckpointInfo:
    """The official checkpoint of a SAM model type (``vit_b``, ``vit_l``, ``vit_h``).

    Raises:
        ConfigError: unknown model type.
    """
    if model_type not in SAM_MODEL_TYPES and model_type != "default":
        raise ConfigError(
            f"unknown SAM model type {model_type!r}; choose one of {', '.join(SAM_MODEL_TYPES)}"
        )
    return lookup(model_type, "sam")


def sha256_file(path: str | Path, chunk_size: int = 4 * 1024 * 1024) -> str:
    """sha256 hex digest of a file, read in chunks (no caching)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def cached_sha256(path: str | Path) -> str:
    """:func:`sha256_file`, computed once per ``(resolved path, mtime_ns, size)``.

    A file replaced in place (new mtime or size) is hashed again.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    value = sha256_file(p)
    with _hash_lock:
        _hash_cache[key] = value
    return value


def hashed_path(sha256: str) -> Path | None:
    """The file :func:`cached_sha256` last hashed to ``sha256`` in this process (``None``: none
    did), to name a weights file known by its digest."""
    with _hash_lock:
        found = [path for (path, _, _), value in _hash_cache.items() if value == sha256]
    return Path(found[-1]) if found else None
