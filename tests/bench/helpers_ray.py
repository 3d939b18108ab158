"""Shared helpers of the Ray engine tests: runs with a given engine, what they left."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from helpers_runner import offline_options

from bench.engines.base import Engine
from bench.options import DataSpec, EngineOptions, EpisodeOptions, RunOptions
from bench.runner import BenchResult, run_examples
from bench.runtime import build_runtime

RAY2 = EngineOptions(name="ray", workers=2)


def run_on(
    run_dir: Path,
    examples: list[Any],
    *,
    options: EpisodeOptions | None = None,
    engine: Engine | None = None,
    engine_options: EngineOptions | None = None,
    spec: DataSpec | None = None,
    concurrency: int = 4,
) -> BenchResult:
    """Run ``examples`` into ``run_dir`` with an engine object or options (default: local)."""
    rt = build_runtime(options or offline_options(None))
    engine_options = engine_options or EngineOptions()
    run = RunOptions(concurrency=concurrency, quiet=True, bootstrap=0, engine=engine_options)
    try:
        return anyio.run(
            lambda: run_examples(rt, examples, run_dir, spec or DataSpec("synthetic"), run, engine=engine)
        )
    finally:
        rt.close()


def trace_events(run_dir: Path) -> Counter[tuple[str, str]]:
    """``(sample_id, event)`` counts of the run's trace."""
    lines = (run_dir / "trace.jsonl").read_text(encoding="utf-8").splitlines()
    return Counter((ev.get("sample_id", ""), ev["event"]) for ev in map(json.loads, lines))


def last_invocation(run_dir: Path) -> dict[str, Any]:
    lines = (run_dir / "invocations.jsonl").read_text(encoding="utf-8").splitlines()
    return dict(json.loads(lines[-1]))
