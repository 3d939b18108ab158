"""Weight files (git-ignored) and the registry of known checkpoints (URL, sha256, size).

``checkpoints.registry`` knows the files; ``checkpoints.download`` fetches and verifies them
(imported lazily: it pulls in httpx and tqdm).
"""

from checkpoints.registry import (
    KNOWN_CHECKPOINTS,
    SAM_MODEL_TYPES,
    CheckpointInfo,
    cached_sha256,
    known_checkpoints,
    lookup,
    sam_checkpoint_info,
    sha256_file,
)

__all__ = [
    "KNOWN_CHECKPOINTS",
    "SAM_MODEL_TYPES",
    "CheckpointInfo",
    "cached_sha256",
    "known_checkpoints",
    "lookup",
    "sam_checkpoint_info",
    "sha256_file",
]
