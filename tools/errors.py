"""The project's exceptions, for tools and plugins: ``from tools.errors import ToolError``.

They are defined in :mod:`cache.errors` (the bottom layer, so that ``cache`` and
``checkpoints`` can raise them too); this module is their public import path.
A recoverable tool problem raises :class:`ToolError` (its message goes back to the VLM);
bad input, configuration, checkpoint, download, data-set and VLM problems have their own
subclasses of :class:`RefsegError`, each with the CLI exit code it maps to.
"""

from cache.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    DownloadError,
    InputError,
    RefsegError,
    ToolError,
    VLMAuthError,
    VLMError,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DownloadError",
    "InputError",
    "RefsegError",
    "ToolError",
    "VLMAuthError",
    "VLMError",
]
