"""A resume after the weights file was replaced at the same path is refused in one line naming
the file (its sha256 is in config.json's ``run.weights``; the path alone is in ``results``), so
one ``samples.jsonl`` never mixes two models; the same file resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agent.episode import EpisodeConfig
from bench.data import load_dataset_spec
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions
from bench.runner import BenchResult, run_examples_sync
from bench.runtime import build_runtime
from tools.errors import ConfigError
from tools.sam_loading import TINY_SAM_CONFIG, build_sam_from_config


def tiny_sam_file(path: Path, seed: int) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.save(build_sam_from_config(TINY_SAM_CONFIG).state_dict(), path)
    return path


def run(run_dir: Path, checkpoint: Path, limit: int | None) -> BenchResult:
    options = EpisodeOptions(
        models=ModelOptions(
            toolset="offline",
            proposer="sam_propose",
            sam_checkpoint=checkpoint,
            points_per_side=4,
            tool_options={"sam_propose": {"config": "tiny"}},
        ),
        episode=EpisodeConfig(controller="oneshot"),
        cache=CacheOptions(enabled=False),
    )
    rt = build_runtime(options)
    try:
        examples = load_dataset_spec("synthetic", 2, "first")
        opts = RunOptions(quiet=True, bootstrap=0, limit=limit)
        return run_examples_sync(rt, examples, run_dir, DataSpec("synthetic", n=2, per_image="first"), opts)
    finally:
        rt.close()


def test_a_weights_file_swapped_at_the_same_path_refuses_the_resume(tmp_path: Path) -> None:
    weights = tiny_sam_file(tmp_path / "sam.pth", seed=0)
    run(tmp_path / "run", weights, limit=1)
    tiny_sam_file(weights, seed=1)  # another model, same path
    with pytest.raises(ConfigError, match=r"other sam_propose weights: .*sam\.pth now has sha256 ") as info:
        run(tmp_path / "run", weights, limit=None)
    assert "\n" not in str(info.value) and "pick a new --out" in str(info.value)
    tiny_sam_file(weights, seed=0)  # the original back: it resumes
    assert run(tmp_path / "run", weights, limit=None).summary.counts.examples == 2
