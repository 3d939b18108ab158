"""``bench suite --toolset sam3``: SAM 3's rows (alone, loop, ground, agent) beside SAM 1's, one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions
from bench.suite import plan_suite, run_suite_sync, toolset_options
from bench.suite_options import SuiteOptions
from tools.clip_loading import register_tiny_clip


def test_the_plan_puts_sam3s_recipes_beside_the_table() -> None:
    plan = plan_suite(["main", "sam3"], [1, 2], [], "vlm")
    by = {s.name: s for s in plan}
    assert [s.name for s in plan] == [
        "oneshot", "loop_iter1", "loop_iter2", "ground",
        "sam3_alone", "sam3_loop_iter2", "sam3_ground", "sam3_agent",
    ]  # fmt: skip
    assert {s.toolset for s in plan if s.name.startswith("sam3_")} == {"sam3"}
    assert {s.toolset for s in plan if not s.name.startswith("sam3_")} == {"base"}
    assert by["sam3_alone"].controller == "oneshot" and by["sam3_agent"].controller == "agent"
    assert by["sam3_ground"].controller == "ground" and by["sam3_loop_iter2"].max_iter == 2
    without_vlm = [s.name for s in plan_suite(["sam3"], [3], [], "rules")]
    assert without_vlm == ["sam3_alone", "sam3_loop_iter3"]  # ground and agent need the VLM


def test_each_side_gets_its_own_tools() -> None:
    chosen = EpisodeOptions(
        models=ModelOptions(
            toolset="sam3", ranker="clip_rank", tool_options={"sam3_propose": {"size": "tiny"}}
        )
    )
    sam1, sam3 = toolset_options(chosen, "base"), toolset_options(chosen, "sam3")
    assert (
        sam1.models.tools == ("sam_propose", "clip_rank") and "sam3_propose" not in sam1.models.tool_options
    )
    assert sam3.models.tools == (
        "sam3_propose",
        "clip_rank",
    )  # --ranker applies to the toolset it was given with
    offline = EpisodeOptions(models=ModelOptions(toolset="offline"))
    assert toolset_options(offline, "base") == offline
    assert toolset_options(offline, "sam3").models.tools == ("sam3_propose", "sam3_rank")


@pytest.mark.slow
def test_a_tiny_suite_runs_sam1_and_sam3_into_one_report(tmp_path: Path) -> None:
    models = ModelOptions(
        weights="random",
        toolset="sam3",
        clip_model=register_tiny_clip(),
        tool_options={"sam_propose": {"config": "tiny"}, "sam3_propose": {"size": "tiny"}},
    )
    options = SuiteOptions(
        out=tmp_path / "suite",
        episode=EpisodeOptions(models=models, cache=CacheOptions(directory=tmp_path / "cache")),
        data=DataSpec(dataset="synthetic", n=2, per_image="first"),
        run=RunOptions(bootstrap=0, quiet=True),
        experiments=("main",),
        max_iters=(1,),
    )
    result = run_suite_sync(options)
    assert [v.name for v in result.runs] == ["oneshot", "loop_iter1", "sam3_alone", "sam3_loop_iter1"]
    assert result.failed == 0 and result.missing == 0
    report = (tmp_path / "suite" / "report.md").read_text()
    assert "| sam3_alone |" in report and "| oneshot |" in report and "sam3_alone vs oneshot" in report
    assert "sam3_* runs: proposer sam3_propose, ranker sam3_rank" in report
    summary = json.loads((tmp_path / "suite" / "sam3_alone" / "summary.json").read_text())
    assert summary["propose"]["tool"] == "sam3_propose"
    config = json.loads((tmp_path / "suite" / "sam3_alone" / "config.json").read_text())
    assert config["run"]["weights"]["sam3_propose"].startswith("random:sam3-tiny-")
    sam1 = json.loads((tmp_path / "suite" / "oneshot" / "config.json").read_text())
    assert sam1["results"]["episode"]["proposer"] == "sam_propose"
