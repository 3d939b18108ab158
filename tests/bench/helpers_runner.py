"""Shared helpers of the runner, report and suite tests (offline toolset, generated scenes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.episode import EpisodeConfig
from bench.data import Example, load_dataset_spec
from bench.doubles.oracle_vlm import OracleVLM, Target
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions, VLMOptions
from bench.runner import BenchResult, run_examples_sync
from bench.runtime import Runtime, build_runtime


def offline_options(
    cache_dir: Path | None,
    episode: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    vlm: VLMOptions | None = None,
) -> EpisodeOptions:
    """Episode options with the offline toolset (``models`` and ``episode`` override fields)."""
    return EpisodeOptions(
        models=ModelOptions(**{"toolset": "offline", **(models or {})}),
        episode=EpisodeConfig(**(episode or {})),
        vlm=vlm or VLMOptions(),
        cache=CacheOptions(directory=cache_dir, enabled=cache_dir is not None),
    )


def oracle_for(examples: list[Example]) -> OracleVLM:
    """A scripted-server policy that knows each example's ground-truth box (the agent draws it
    with the prompt tool and submits it; ``ground`` gets the box)."""
    targets = {}
    for ex in examples:
        mask = ex.gt_mask()
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        targets[ex.sentence] = Target(box, (mask.shape[1], mask.shape[0]), ex.sentence)
    return OracleVLM(targets)


def offline_runtime(cache_dir: Path | None, **episode: Any) -> Runtime:
    return build_runtime(offline_options(cache_dir, episode))


def synthetic(n: int = 2) -> list[Example]:
    return load_dataset_spec("synthetic", n)


def run(
    run_dir: Path,
    cache_dir: Path | None,
    examples: list[Example],
    *,
    spec: DataSpec | None = None,
    episode: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    vlm: VLMOptions | None = None,
    **options: Any,
) -> BenchResult:
    """Run ``examples`` into ``run_dir``; ``episode``/``models`` set EpisodeConfig/ModelOptions
    fields, the other keywords RunOptions fields."""
    rt = build_runtime(offline_options(cache_dir, episode, models, vlm))
    options.setdefault("quiet", True)
    options.setdefault("bootstrap", 0)
    try:
        return run_examples_sync(
            rt, examples, run_dir, spec or DataSpec("synthetic", n=2), RunOptions(**options)
        )
    finally:
        rt.close()


def sample_lines(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "samples.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def id_counts(run_dir: Path) -> Counter[str]:
    return Counter(rec["example_id"] for rec in sample_lines(run_dir))
