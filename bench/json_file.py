"""Reading a run folder's small JSON files (``config.json``, ``summary.json``) from disk.

Whatever is in the file is outside text: a copy, an editor, a crash or a person may have put
anything there. :func:`read_json_object` bounds it before parsing (size, nesting, UTF-8) and
turns every way it can be unreadable into one :class:`tools.errors.ConfigError` line naming
the file and what to do, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.errors import ConfigError
from tools.safe_json import loads

MAX_RUN_FILE_BYTES = 64 * 2**20  # a summary of tens of thousands of examples is a few MB


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when the file is absent or holds another value.

    Raises:
        ConfigError: the file cannot be read, is over :data:`MAX_RUN_FILE_BYTES`, is not UTF-8,
            is nested too deeply or is not JSON.
    """
    fix = "remove it or pick a new --out"
    try:
        size = path.stat().st_size
        if size > MAX_RUN_FILE_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes, over the limit of {MAX_RUN_FILE_BYTES:,}; {fix}")
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({exc.strerror or exc}); {fix}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: unreadable (not UTF-8 at byte {exc.start}); {fix}") from None
    try:
        value = loads(text, max_chars=MAX_RUN_FILE_BYTES, what=str(path))
    except ValueError as exc:
        raise ConfigError(f"unreadable: {exc}; {fix}") from None
    return value if isinstance(value, dict) else None
