"""Shared by the hardening tests: each scorecard row runs once per pytest process, then is reused."""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
from pathlib import Path

from bench.chaos import RowResult, run_row

_ROOT = Path(tempfile.mkdtemp(prefix="refseg-hardening-"))
atexit.register(shutil.rmtree, _ROOT, True)


@functools.cache
def chaos_row(name: str) -> RowResult:
    """The scorecard row ``name``, run in its own folder (cached for the session)."""
    logging.getLogger("agent.vlm").setLevel(logging.ERROR)
    slug = "".join(c if c.isalnum() else "-" for c in name)
    return run_row(name, _ROOT / slug)
