"""The project's base exception and the two generic ones every layer raises.

User mistakes raise a :class:`RefsegError` subclass with a message that says what to do; the
CLI prints the message in one line and exits with the error's ``exit_code`` instead of
showing a traceback. Only the base class and the generic input and configuration errors live
here, in ``cache`` (the bottom layer), so that every package can raise them; each other error
lives with the package that owns its subject (:mod:`checkpoints.errors`, :mod:`tools.errors`,
:mod:`bench.data_errors`). Tool and plugin authors import them all from :mod:`tools.errors`.
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
