"""The project's exceptions, for tools and plugins: ``from tools.errors import ToolError``.

This is the one import place for tool and plugin authors. It defines the errors the tool layer
owns and re-exports those of the layers below it:

- :class:`ToolError` (here): a recoverable tool problem; its message goes back to the VLM.
- :class:`VLMError` and :class:`VLMAuthError` (here): the failures of the VLM client contract,
  :class:`tools.base.ChatClient`. That contract is defined in ``tools`` because tools call the
  VLM (``refine_query``'s VLM refiner, :mod:`tools.refine_vlm`) and ``tools`` never imports
  ``agent``; ``agent.vlm`` implements the client and raises these, and the controllers catch
  them. So ``tools`` is the lowest package that owns them.
- :class:`RefsegError`, :class:`InputError`, :class:`ConfigError` (from :mod:`cache.errors`)
  and :class:`CheckpointError`, :class:`DownloadError` (from :mod:`checkpoints.errors`).

Each subclass of :class:`RefsegError` carries the CLI exit code it maps to. The data-set
error, :class:`bench.data_errors.DatasetError`, belongs to ``bench`` (above ``tools``).
"""

from __future__ import annotations

from cache.errors import ConfigError, InputError, RefsegError
from checkpoints.errors import CheckpointError, DownloadError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DownloadError",
    "InputError",
    "RefsegError",
    "ToolError",
    "VLMAuthError",
    "VLMError",
]


class ToolError(RefsegError):
    """A recoverable tool problem; its message goes back to the VLM as the tool result."""


class VLMError(RefsegError):
    """The VLM endpoint is not configured, unreachable or out of retries."""

    exit_code = 5


class VLMAuthError(RefsegError):
    """The VLM endpoint rejects the key (401/403) or has no such model: every VLM call would
    fail the same way, so a run stops at once instead of falling back on every example.

    Deliberately not a :class:`VLMError`: controllers catch those to fall back per example.
    """

    exit_code = 6
