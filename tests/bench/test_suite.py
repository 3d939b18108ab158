"""The suite: its plan, and a whole (tiny) run on generated scenes with the offline toolset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.suite import OFFLINE_GAIN_NOTE, plan_suite
from tools.errors import ConfigError


def test_plan_covers_the_original_table() -> None:
    plan = plan_suite(["main", "ablation", "reliability"], [1, 2, 3], ["noise10", "blur9"], "vlm")
    names = [s.name for s in plan]
    assert names == [
        "oneshot",
        "loop_iter1",
        "loop_iter2",
        "loop_iter3",
        "ground",
        "loop_novlm",
        "oneshot_noise10",
        "loop_iter3_noise10",
        "oneshot_blur9",
        "loop_iter3_blur9",
    ]
    by = {s.name: s for s in plan}
    assert by["loop_novlm"].refiner == "rules" and by["loop_iter2"].refiner == "vlm"
    assert by["loop_iter3_blur9"].perturb == "blur9" and by["loop_iter3_blur9"].max_iter == 3
    assert by["ground"].controller == "ground" and by["ground"].refiner == "vlm"
    no_vlm = [s.name for s in plan_suite(["main"], [1], [], "rules")]
    assert no_vlm == ["oneshot", "loop_iter1"]  # grounding needs a VLM
    only_rel = [s.name for s in plan_suite(["reliability"], [1, 2], ["blur5"], "rules")]
    assert only_rel == ["oneshot", "loop_iter2", "oneshot_blur5", "loop_iter2_blur5"]  # clean ones included
    with pytest.raises(ConfigError, match="unknown experiment"):
        plan_suite(["main", "speed"], [1], [], "rules")
    with pytest.raises(ConfigError, match="perturbation"):
        plan_suite(["reliability"], [1], ["fog"], "rules")
    with pytest.raises(ConfigError, match="max-iters"):
        plan_suite(["main"], [0], [], "rules")


@pytest.mark.slow
def test_suite_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "suite"
    args = [
        "bench",
        "suite",
        "--dataset",
        "synthetic",
        "--n",
        "2",
        "--toolset",
        "offline",
        "--out",
        str(out),
        "--quiet",
        "--bootstrap",
        "50",
        "--perturbations",
        "noise20,blur9",
        "--concurrency",
        "8",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "refiner: rules, no VLM configured" in printed
    summary = json.loads((out / "summary.json").read_text())
    names = [
        "oneshot",
        "loop_iter1",
        "loop_iter2",
        "loop_iter3",
        "loop_novlm",
        "oneshot_noise20",
        "loop_iter3_noise20",
        "oneshot_blur9",
        "loop_iter3_blur9",
        "loop_ask",
    ]
    assert list(summary["runs"]) == names
    for name in names:
        assert (out / name / "samples.jsonl").exists()
        assert summary["runs"][name]["counts"]["failed"] == 0
        assert name in printed
    runs = summary["runs"]
    # The clean image is proposed once for the whole suite: later clean runs hit the cache.
    assert runs["oneshot"]["propose"]["computations"] == 2
    assert runs["loop_iter2"]["propose"]["computations"] == 0
    assert runs["oneshot_blur9"]["propose"]["computations"] == 2
    assert runs["loop_novlm"]["metrics"]["miou"] == runs["loop_iter3"]["metrics"]["miou"]
    report = (out / "report.md").read_text()
    assert "loop_novlm equals loop_iter3" in report and "## Reliability" in report
    # What the offline table can say, beside it; no model or weights claimed for it.
    assert f"note: {OFFLINE_GAIN_NOTE}" in printed and f"- {OFFLINE_GAIN_NOTE}" in report
    assert "weights none (no tool of this run has weights)" in report
    settings = json.loads((out / "oneshot" / "config.json").read_text())["results"]["settings"]
    assert "weights" not in settings and "clip_model" not in settings and "sam_model_type" not in settings
    assert (out / "figures" / "reliability.png").exists() and (out / "figures" / "miou_vs_iter.png").exists()
    # Cold cost does not depend on the order: the loop runs hit the proposals one-shot left in
    # the shared cache, and still cost at least what one-shot's proposals cost.
    cold = {n: runs[n]["costs"]["tools"]["region_propose"]["cold_seconds"] for n in names}
    assert runs["loop_iter2"]["costs"]["tools"]["region_propose"]["seconds"] == 0
    assert cold["loop_iter2"] == pytest.approx(cold["oneshot"], rel=1e-3) and cold["oneshot"] > 0
    assert "## Cost per run (cold: from an empty cache)" in report
    # Every run against the one-shot of its perturbation, by images; galleries of the best loop.
    assert (
        "| loop_iter3 vs oneshot | 2 | " in report and "| loop_iter3_blur9 vs oneshot_blur9 | 2 | " in report
    )
    assert "loop_iter3 - oneshot: mIoU" in printed
    assert "## Case galleries (one-shot vs the best loop run)" in report
    # The frontier experiment: loop_ask always asks; every threshold is replayed from it.
    assert (
        runs["loop_ask"]["label"]["tau_conf"] == 1.0 and runs["loop_ask"]["stop_reasons"].get("guard", 0) == 0
    )
    assert "## Cost-quality frontier" in report and "(figures/frontier.png)" in report
    assert "## Guard calibration" in report and "(figures/calibration.png)" in report
    frontier = json.loads((out / "frontier.json").read_text())
    assert frontier["marks"][0]["miou"] == runs["loop_iter3"]["metrics"]["miou"]  # replay = real run
    assert "(cases/improved.png)" in report and (out / "cases" / "improved.png").exists()
    cases = json.loads((out / "cases" / "cases.json").read_text())
    assert cases["totals"]["paired"] == runs["oneshot"]["n_expressions"]
    # Again: every sub-run resumes with nothing to do.
    assert main(args) == 0
    again = json.loads((out / "summary.json").read_text())
    assert all(r["timing"]["examples_run"] == 0 for r in again["runs"].values())
    assert all(r["timing"]["invocations"] == 2 for r in again["runs"].values())


@pytest.mark.slow
def test_suite_subset(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    assert (
        main(
            [
                "bench",
                "suite",
                "--dataset",
                "synthetic",
                "--n",
                "1",
                "--toolset",
                "offline",
                "--out",
                str(out),
                "--quiet",
                "--bootstrap",
                "0",
                "--experiments",
                "main",
                "--max-iters",
                "1,2",
            ]
        )
        == 0
    )
    assert list(json.loads((out / "summary.json").read_text())["runs"]) == [
        "oneshot",
        "loop_iter1",
        "loop_iter2",
    ]


@pytest.mark.slow
def test_suite_with_a_vlm_refines_with_it_and_ablates_without(tmp_path: Path) -> None:
    from bench.doubles.scripted_server import ScriptedServer, Text

    out = tmp_path / "suite"
    reply = Text('{"query": "the red circle", "rationale": "x"}', prompt_tokens=700, completion_tokens=20)
    with ScriptedServer(policy=lambda _req: reply) as srv:
        args = ["bench", "suite", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
        args += ["--out", str(out), "--quiet", "--bootstrap", "0", "--experiments", "main,ablation"]
        args += ["--max-iters", "1,2", "--vlm-base-url", srv.base_url]
        assert main(args) == 0
        assert srv.requests, "the loop's refiner should have asked the VLM"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"][0].startswith("refiner: vlm")
    runs = summary["runs"]
    assert list(runs) == ["oneshot", "loop_iter1", "loop_iter2", "ground", "loop_novlm"]
    assert runs["ground"]["costs"]["tools"]["vlm"]["calls"] > 0  # it asked the VLM for a box
    assert runs["loop_iter1"]["label"]["refiner"] == "vlm"
    assert runs["loop_novlm"]["label"]["refiner"] == "rules"
    vlm_refines = runs["loop_iter1"]["costs"]["tools"]["refine_query"]
    assert vlm_refines["calls"] > 0 and vlm_refines["tokens_in"] > 0
    assert runs["loop_novlm"]["costs"]["tools"]["refine_query"]["tokens_in"] == 0
    assert runs["loop_iter1"]["propose"]["computations"] == 0  # shared tools and cache
    # loop_iter2 got loop_iter1's rewrites from the shared cache: it spent fewer tokens, but
    # its cold cost (from an empty cache) counts them. Every VLM loop run shows cold tokens.
    iter2 = runs["loop_iter2"]["costs"]["tools"]["refine_query"]
    assert iter2["disk_hits"] > 0 and iter2["tokens_in"] < iter2["cold_tokens_in"]
    for name in ("loop_iter1", "loop_iter2"):
        total = runs[name]["costs"]["total"]
        assert total["cold_tokens_in"] >= vlm_refines["tokens_in"] > 0 and total["cold_unknown"] == 0
        assert total["per_1000_expressions"]["cold_tokens_in"] > 0
    assert (out / "figures" / "cost.png").exists()
