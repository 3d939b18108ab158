"""The proposer's image encodes per image, one definition for SAM 1 and SAM 3: counted by the
engine, in ``invocations.jsonl``, the summary's propose block, the console line and the
report's timing table. SAM 3 proposes once per query (``propose per image`` counts queries)
but encodes an image once; cache hits encode nothing and say so in the trace."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from agent.episode import EpisodeConfig
from bench.data import Example, load_dataset_spec
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions
from bench.records import Summary
from bench.report.markdown import print_summary
from bench.report.run_reader import load_run
from bench.report.tables import timing_table
from bench.runner import BenchResult, run_examples_sync
from bench.runtime import build_runtime
from bench.summary import _propose_stats
from tools.clip_loading import TINY_CLIP_NAME

SAM1 = ModelOptions(
    weights="random",
    clip_model=TINY_CLIP_NAME,
    points_per_side=4,
    tool_options={"sam_propose": {"config": "tiny"}},
)
SAM3 = ModelOptions(toolset="sam3", weights="random", tool_options={"sam3_propose": {"size": "tiny"}})


def three_expressions_on_one_image() -> list[Example]:
    examples = load_dataset_spec("synthetic", 1)
    assert len({ex.sentence for ex in examples[:3]}) == 3
    return examples[:3]


def run(run_dir: Path, cache_dir: Path, models: ModelOptions, examples: list[Example]) -> BenchResult:
    options = EpisodeOptions(
        models=models,
        episode=EpisodeConfig(controller="oneshot"),
        cache=CacheOptions(directory=cache_dir, enabled=True),
    )
    rt = build_runtime(options)
    try:
        spec = DataSpec("synthetic", n=1)
        return run_examples_sync(rt, examples, run_dir, spec, RunOptions(quiet=True, bootstrap=0))
    finally:
        rt.close()


def trace(run_dir: Path, tool: str) -> list[dict[str, Any]]:
    lines = (run_dir / "trace.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "tool_call" and e["tool"] == tool]


@pytest.mark.slow
@pytest.mark.parametrize(("models", "proposals"), [(SAM1, 1.0), (SAM3, 3.0)], ids=["sam1", "sam3"])
def test_one_encode_per_image_for_both_proposers_and_none_from_a_warm_cache(
    tmp_path: Path, models: ModelOptions, proposals: float
) -> None:
    examples = three_expressions_on_one_image()
    cold = run(tmp_path / "cold", tmp_path / "cache", models, examples).summary.propose
    assert cold.per_image == proposals  # SAM 3: one per query (three expressions)
    assert cold.image_encodes == 1 and cold.image_encodes_per_image == 1.0
    assert cold.last_invocation_image_encodes_per_image == 1.0
    line = json.loads((tmp_path / "cold" / "invocations.jsonl").read_text().splitlines()[-1])
    assert line["image_encodes"] == 1

    warm = run(tmp_path / "warm", tmp_path / "cache", models, examples).summary.propose
    assert warm.per_image == 0.0 and warm.image_encodes == 0 and warm.image_encodes_per_image == 0.0


def test_sam3_cache_hits_say_cached_not_encoded(tmp_path: Path) -> None:
    examples = three_expressions_on_one_image()
    again = dataclasses.replace(examples[0], example_id=examples[0].example_id + "-again")
    examples = [*examples, again]  # the same query again: served from memory (or joined)
    run(tmp_path / "cold", tmp_path / "cache", SAM3, examples)
    calls = trace(tmp_path / "cold", "sam3_propose")
    said = [(e["result"]["image"], e["served"]) for e in calls]
    assert sorted(said) == sorted(
        [("encoded", "computed"), ("reused", "computed"), ("reused", "computed"), ("cached", "memory")]
    ) or sorted(said) == sorted(  # the repeat may join the first call while it runs
        [("encoded", "computed"), ("reused", "computed"), ("reused", "computed"), ("cached", "joined")]
    )
    run(tmp_path / "warm", tmp_path / "cache", SAM3, examples)
    assert {e["result"]["image"] for e in trace(tmp_path / "warm", "sam3_propose")} == {"cached"}


def test_the_console_and_the_timing_table_show_encodes_per_image(tmp_path: Path) -> None:
    result = run(tmp_path / "r", tmp_path / "cache", SAM3, three_expressions_on_one_image())
    out = io.StringIO()
    print_summary("r", result.summary, out)
    assert "propose computations 3.00, image encodes 1.00" in out.getvalue()
    headers, rows = timing_table([load_run(tmp_path / "r")])
    assert rows[0][headers.index("encodes/img")] == "1.00"
    assert rows[0][headers.index("propose/img")] == "3.00"


def test_runs_from_before_the_count_read_as_unknown() -> None:
    old = [{"event": "end", "proposer": "sam_propose", "images_run": 2, "computed": {"sam_propose": 2}}]
    stats = Summary.model_validate({"propose": _propose_stats(old)}).propose
    assert stats.per_image == 1.0 and stats.image_encodes is None and stats.image_encodes_per_image is None
    assert Summary.model_validate({}).propose.image_encodes_per_image is None
