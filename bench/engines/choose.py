"""The engine that :class:`bench.options.EngineOptions` names."""

from __future__ import annotations

from bench.engines.base import Engine
from bench.engines.local import LocalEngine
from bench.engines.ray_engine import RayEngine
from bench.options import EngineOptions


def open_engine(options: EngineOptions) -> Engine:
    """The engine, not started yet: a Ray cluster starts on the first run that has work, so
    a finished run folder resumes without one. Close it with ``await engine.aclose()``."""
    if options.name == "ray":
        return RayEngine(options)
    return LocalEngine()
