"""The frontier's replay of a run at thresholds 1/1 equals real runs at other thresholds, example
by example: chosen candidate, IoU, stop reason, rounds, VLM and refiner calls, USD, queries;
and in total (mIoU, cIoU, VLM calls). For ``loop`` with the rules refiner and with a scripted
VLM refiner over real HTTP (the real ``openai`` client and the local scripted server), and for
``ground`` against a jittered oracle box VLM (so some drawings are not confirmed and their stop
reason is the guard's verdict on the re-rank)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_frontier import PAIRS, compare_with_replay, runs_at
from helpers_runner import oracle_for, synthetic

from bench.cli import main
from bench.doubles.oracle_vlm import OracleVLM
from bench.doubles.scripted_refiner import ScriptedRefiner, synthetic_rewrites
from bench.doubles.scripted_server import ScriptedServer
from bench.frontier.replay import replay_run, replayed_records
from bench.frontier.source import read_source
from bench.samples import read_samples


def _distinct(results: list[dict[str, object]], key: str) -> int:
    return len({str(r[key]) for r in results})


@pytest.mark.slow
def test_loop_with_the_rules_refiner_replays_every_pair_exactly(tmp_path: Path) -> None:
    examples = synthetic(2)
    runs = runs_at(tmp_path, examples, 2, PAIRS)
    results = [compare_with_replay(runs[(1.0, 1.0)], runs[tau], tau) for tau in PAIRS]
    # Not a degenerate check: the pairs stop different episodes at different rounds.
    assert _distinct(results, "asks") == len(PAIRS)
    assert sum(int(r["late_guard"]) for r in results) > 0  # some stopped after a rewrite


@pytest.mark.slow
def test_loop_with_pick_last_replays_exactly(tmp_path: Path) -> None:
    examples = synthetic(2)
    runs = runs_at(tmp_path, examples, 2, PAIRS[:2], pick="last")
    for tau in PAIRS[:2]:
        compare_with_replay(runs[(1.0, 1.0)], runs[tau], tau)


@pytest.mark.slow
def test_loop_with_a_scripted_vlm_refiner_replays_every_pair_exactly(tmp_path: Path) -> None:
    examples = synthetic(2)
    with ScriptedServer(policy=ScriptedRefiner(synthetic_rewrites(2)), max_requests=10_000) as srv:
        runs = runs_at(tmp_path, examples, 2, PAIRS, url=srv.base_url, refiner="vlm")
        asked = len(srv.requests)
    assert asked > 0
    results = [compare_with_replay(runs[(1.0, 1.0)], runs[tau], tau) for tau in PAIRS]
    assert all(int(r["vlm_calls"]) > 0 for r in results)
    assert _distinct(results, "vlm_calls") == len(PAIRS)
    assert sum(int(r["late_guard"]) for r in results) > 0  # stopped after a VLM rewrite
    asked_always = {r.stop_reason for r in read_samples(runs[(1.0, 1.0)])[0].values()}
    assert "refiner_exhausted" in asked_always  # the prefix covers a refiner with nothing new


@pytest.mark.slow
def test_ground_replays_every_pair_exactly(tmp_path: Path) -> None:
    examples = synthetic(3)
    oracle = OracleVLM(oracle_for(examples).targets, jitter=0.3)  # some drawings miss the box
    with ScriptedServer(policy=oracle, max_requests=10_000) as srv:
        runs = runs_at(tmp_path, examples, 3, PAIRS, url=srv.base_url, controller="ground")
    results = [compare_with_replay(runs[(1.0, 1.0)], runs[tau], tau) for tau in PAIRS]
    assert _distinct(results, "vlm_calls") == len(PAIRS)
    stops = {s for r in results for s in r["stops"]}  # type: ignore[attr-defined]
    assert {"grounded", "guard", "max_iter"} <= stops  # unconfirmed drawings relabelled too


@pytest.mark.slow
def test_the_agent_replays_only_its_warm_start_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = synthetic(1)
    with ScriptedServer(policy=oracle_for(examples), max_requests=10_000) as srv:
        runs = runs_at(tmp_path, examples, 1, PAIRS[:1], url=srv.base_url, controller="agent")
    ask, real = runs[(1.0, 1.0)], runs[PAIRS[0]]
    replayed = replayed_records(replay_run(read_source(ask)), *PAIRS[0])
    records, _ = read_samples(real)
    settled = [eid for eid, rec in records.items() if rec.stop_reason == "guard" and rec.spent.vlm_calls == 0]  # type: ignore[union-attr]
    assert settled and len(settled) < len(records)  # some settled by the warm start, some asked
    for eid, rec in records.items():
        out = replayed[eid]
        if eid in settled:  # exact: the warm start's top-1, no VLM call
            assert out.record is not None and (out.record.chosen, out.record.iou) == (rec.chosen, rec.iou)
            assert out.spend.vlm_calls == 0
        else:  # past the first VLM turn: not replayable, and not pretended to be
            assert out.record is None
    assert main(["bench", "frontier", str(ask), "--grid", "0.5", "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert "only the warm-start guard decision is replayable" in printed
    assert "settled by the warm start" in printed and f"{len(settled)}/{len(records)}" in printed
