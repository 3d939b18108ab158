"""The suite's frontier experiment: its plan, and with a VLM (a scripted refiner and a box
oracle over real HTTP) the frontier of loop_ask and ground_ask in USD, and thresholds picked
under a price cap on another split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_runner import oracle_for, synthetic

from bench.cli import main
from bench.doubles.scripted_refiner import ScriptedRefiner, synthetic_rewrites
from bench.doubles.scripted_server import ScriptedServer
from bench.frontier.in_suite import ALWAYS_ASK
from bench.suite import plan_suite


def test_the_frontier_experiment_plans_always_ask_runs() -> None:
    plan = {s.name: s for s in plan_suite(["main", "frontier"], [1, 3], [], "vlm", pick_split="train")}
    assert [n for n in plan if "ask" in n] == ["loop_ask", "ground_ask", "loop_ask_pick", "ground_ask_pick"]
    assert plan["loop_ask"].tau == ALWAYS_ASK and plan["loop_ask"].max_iter == 3
    assert plan["ground_ask"].controller == "ground" and plan["ground_ask_pick"].split == "train"
    assert plan["loop_iter3"].tau is None  # the main table keeps the suite's thresholds
    rules = [s.name for s in plan_suite(["frontier"], [2], [], "rules")]
    assert rules == ["loop_ask"]  # grounding needs the VLM


@pytest.mark.slow
def test_with_a_vlm_the_frontier_is_in_usd_and_the_cap_picks_on_the_other_split(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    examples = synthetic(2)
    policy = ScriptedRefiner(synthetic_rewrites(2), fallback=oracle_for(examples))
    with ScriptedServer(policy=policy, max_requests=20_000) as srv:
        args = ["bench", "suite", "--dataset", "synthetic", "--n", "2", "--toolset", "offline", "--quiet"]
        args += ["--out", str(out), "--experiments", "main,frontier", "--max-iters", "2", "--bootstrap", "50"]
        args += ["--vlm-base-url", srv.base_url, "--pick-thresholds", "--pick-split", "other"]
        assert main([*args, "--max-usd-per-1k", "1.0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"loop_ask", "ground_ask", "loop_ask_pick", "ground_ask_pick"} <= set(summary["runs"])
    frontier = json.loads((out / "frontier.json").read_text())["frontiers"]
    assert [f["run"].split("/")[-1] for f in frontier] == ["loop_ask", "ground_ask"]
    assert all(f["cost_axis"] == "usd" for f in frontier)
    loop = frontier[0]
    assert (
        loop["always_ask"]["usd_per_1k"]
        > loop["marks"][0]["usd_per_1k"]
        > 0
        == loop["one_shot"]["usd_per_1k"]
    )
    assert loop["measured"][0]["label"] == "loop_iter2"
    assert loop["measured"][0]["usd"] == pytest.approx(loop["marks"][0]["usd_per_1k"])  # replay = real run
    picks = json.loads((out / "pick.json").read_text())["picks"]
    for pick in picks:
        assert pick["chose_on"].startswith("split other") and pick["scored"]["usd_per_1k"] >= 0
        assert pick["chosen_on_choosing_images"]["usd_per_1k"] <= 1.0
    report = (out / "report.md").read_text()
    assert "cost axis: USD per 1,000 expressions (from an empty cache)" in report
    assert "chose on: split other" in report and "| picked, scored |" in report
