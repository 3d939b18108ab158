"""The evaluation data's error: a data set that is missing or has the wrong schema.

A module of its own so that every data-set reader (built-in or an adapter) raises the same
class without importing the others.
"""

from __future__ import annotations

from cache.errors import RefsegError


class DatasetError(RefsegError):
    """A data set is missing or has the wrong schema."""

    exit_code = 2
