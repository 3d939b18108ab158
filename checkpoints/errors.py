"""Errors about weight files: the checkpoints package owns them (what exists, where, its sha256)."""

from __future__ import annotations

from cache.errors import RefsegError


class CheckpointError(RefsegError):
    """A weight file is missing, corrupt, or does not match its architecture."""

    exit_code = 3


class DownloadError(RefsegError):
    """Weights could not be fetched or failed verification."""

    exit_code = 4
