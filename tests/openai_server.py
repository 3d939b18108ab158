"""The scripted OpenAI-compatible test server; it lives in :mod:`bench.chaos.server` (re-exported)."""

from bench.chaos.server import *  # noqa: F403
from bench.chaos.server import __all__ as __all__
