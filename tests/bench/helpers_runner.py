"""Shared helpers of the runner, report and suite tests (offline toolset, generated scenes)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.data import Example, load_dataset_spec
from bench.options import Runtime, add_episode_options, build_runtime
from bench.runner import BenchResult, DataSpec, RunOptions, run_bench_sync


def offline_runtime(cache_dir: Path | None, *extra: str) -> Runtime:
    parser = argparse.ArgumentParser()
    add_episode_options(parser)
    cache = ["--cache-dir", str(cache_dir)] if cache_dir is not None else ["--no-cache"]
    return build_runtime(parser.parse_args(["--toolset", "offline", *cache, *extra]))


def synthetic(n: int = 2) -> list[Example]:
    return load_dataset_spec("synthetic", n)


def run(
    run_dir: Path,
    cache_dir: Path | None,
    examples: list[Example],
    *extra: str,
    spec: DataSpec | None = None,
    **options: Any,
) -> BenchResult:
    rt = offline_runtime(cache_dir, *extra)
    options.setdefault("quiet", True)
    options.setdefault("bootstrap", 0)
    try:
        return run_bench_sync(
            rt, examples, run_dir, spec or DataSpec("synthetic", n=2), RunOptions(**options)
        )
    finally:
        rt.close()


def sample_lines(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "samples.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def id_counts(run_dir: Path) -> Counter[str]:
    return Counter(rec["example_id"] for rec in sample_lines(run_dir))
