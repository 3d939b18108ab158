"""One base exception for the whole project, with typed subclasses.

User mistakes raise these with a message that says what to do; the CLI prints the
message in one line and exits non-zero instead of showing a traceback. They live in
``cache`` (the bottom layer) so that every package can raise them; tool and plugin
authors import them from :mod:`tools.errors`.
"""

from __future__ import annotations


class RefsegError(Exception):
    """Base class of every error refseg-loop raises on purpose."""

    exit_code = 1


class InputError(RefsegError):
    """Bad user input: an unreadable image, an empty expression, a wrong option."""

    exit_code = 2


class ConfigError(RefsegError):
    """An unknown controller, tool or model name, or inconsistent options."""

    exit_code = 2


class CheckpointError(RefsegError):
    """A weight file is missing, corrupt, or does not match its architecture."""

    exit_code = 3


class DownloadError(RefsegError):
    """Weights could not be fetched or failed verification."""

    exit_code = 4


class DatasetError(RefsegError):
    """A data set is missing or has the wrong schema."""

    exit_code = 2


class VLMError(RefsegError):
    """The VLM endpoint is not configured, unreachable or out of retries."""

    exit_code = 5


class VLMAuthError(RefsegError):
    """The VLM endpoint rejects the key (401/403) or has no such model: every VLM call would
    fail the same way, so a run stops at once instead of falling back on every example.

    Deliberately not a :class:`VLMError`: controllers catch those to fall back per example.
    """

    exit_code = 6


class ToolError(RefsegError):
    """A recoverable tool problem; its message goes back to the VLM as the tool result."""
