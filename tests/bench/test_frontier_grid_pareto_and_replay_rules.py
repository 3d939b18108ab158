"""The frontier's parts on hand-made records: the grid, where the guard stops an episode, what
``pick best`` / ``last`` choose, ``ground``'s relabelled stop reasons, the agent's warm start
only, and the Pareto front (against a brute-force check)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from bench.data.protocols import MASK_IOU
from bench.frontier.frontier import cost_axis, mark_pareto
from bench.frontier.grid import Grid
from bench.frontier.points import FrontierPoint, PointEvaluator
from bench.frontier.replay import replay_agent, replay_ground, replay_loop
from bench.records import RankedCandidateRecord, RankStepRecord, SampleRecord, SpendRecord
from tools.errors import InputError


def _step(step: int, conf: float, gap: float, top: int, iou: float, calls: int) -> RankStepRecord:
    cand = RankedCandidateRecord(index=top, prob=conf, iou=iou, inter=int(100 * iou), union=100, pred_area=80)
    spent = SpendRecord(vlm_calls=calls, asks=calls, usd=0.01 * calls, cold_usd=0.01 * calls)
    return RankStepRecord(step=step, query=f"q{step}", conf=conf, gap=gap, spent=spent, candidates=[cand])


def _record(steps: list[RankStepRecord], stop: str, **kw: Any) -> SampleRecord:
    base: dict[str, Any] = {
        "index": 0,
        "example_id": "img:1:0",
        "image_id": "img",
        "sentence": "the thing",
        "failed": False,
        "iou": steps[-1].candidates[0].iou,
        "stop_reason": stop,
        "iterations": len(steps) - 1,
        "queries": [s.query for s in steps],
        "spent": SpendRecord(vlm_calls=len(steps), asks=len(steps), cold_usd=0.01 * len(steps)),
        "rank_steps": steps,
        "gt_area": 100,
    }
    return SampleRecord(**{**base, **kw})


LOOP = [_step(2, 0.30, 0.05, 7, 0.1, 0), _step(4, 0.60, 0.30, 3, 0.9, 1), _step(6, 0.45, 0.40, 5, 0.5, 2)]


def test_the_guard_stops_the_loop_at_its_first_passing_ranking() -> None:
    ep = replay_loop(_record(LOOP, "max_iter"), "best")
    at = {tau: ep.at(*tau) for tau in [(0.0, 0.0), (0.5, 0.2), (0.4, 0.35), (0.9, 0.9)]}
    assert at[(0.0, 0.0)].stopped_at == 0 and at[(0.0, 0.0)].record.chosen == 7  # type: ignore[union-attr]
    assert at[(0.5, 0.2)].stopped_at == 1 and at[(0.5, 0.2)].spend.vlm_calls == 1
    assert at[(0.5, 0.2)].record.queries == ["q2", "q4"]  # type: ignore[union-attr]
    assert at[(0.5, 0.2)].record.iterations == 1  # type: ignore[union-attr]
    # Stopped at the third ranking: pick best keeps the more confident second one.
    third = at[(0.4, 0.35)]
    assert third.stopped_at == 2 and third.record.chosen == 3 and third.record.iou == 0.9  # type: ignore[union-attr]
    assert third.record.stop_reason == "guard" and third.spend.vlm_calls == 2  # type: ignore[union-attr]
    # No ranking passes: the episode as recorded.
    assert at[(0.9, 0.9)].stopped_at is None and at[(0.9, 0.9)].record.stop_reason == "max_iter"  # type: ignore[union-attr]
    assert at[(0.9, 0.9)].spend.vlm_calls == 3


def test_pick_last_keeps_the_last_ranking_of_the_prefix() -> None:
    third = replay_loop(_record(LOOP, "max_iter"), "last").at(0.4, 0.35)
    assert third.record.chosen == 5 and third.record.iou == 0.5  # type: ignore[union-attr]


def test_pick_best_keeps_the_first_of_equally_confident_rankings() -> None:
    tied = [_step(2, 0.3, 0.0, 1, 0.2, 0), _step(4, 0.3, 0.1, 2, 0.8, 1)]
    assert replay_loop(_record(tied, "max_iter"), "best").at(0.0, 0.1).record.chosen == 1  # type: ignore[union-attr]


def test_pick_best_starts_again_when_the_candidates_change() -> None:
    steps = [_step(2, 0.9, 0.05, 1, 0.3, 0), _step(5, 0.6, 0.3, 2, 0.8, 1)]
    steps[1].proposal_set = 1  # a text-conditioned proposer found other candidates for the rewrite
    assert replay_loop(_record(steps, "max_iter"), "best").at(0.5, 0.2).record.chosen == 2  # type: ignore[union-attr]
    steps[1].proposal_set = 0  # the same candidates: the first, more confident ranking stays best
    assert replay_loop(_record(steps, "max_iter"), "best").at(0.5, 0.2).record.chosen == 1  # type: ignore[union-attr]


def test_an_empty_ranking_stopped_at_chooses_no_mask() -> None:
    empty = RankStepRecord(step=2, query="q", conf=0.0, gap=0.0, spent=SpendRecord(), candidates=[])
    ep = replay_loop(_record([_step(1, 0.3, 0.1, 4, 0.2, 0)], "not_found", rank_steps=[empty]), "best")
    out = ep.at(0.0, 0.0).record
    assert out is not None and out.failed and out.chosen == -1 and out.error == "the episode chose no mask"
    assert out.union == 100 and out.iou == 0.0


def test_ground_relabels_an_unconfirmed_drawing_by_the_guard_on_its_re_rank() -> None:
    steps = [_step(2, 0.3, 0.1, 4, 0.2, 0), _step(5, 0.7, 0.5, 9, 0.8, 1)]
    ep = replay_ground(_record(steps, "max_iter", chosen=9, iou=0.8), "best")
    assert ep.at(0.2, 0.1).record.stop_reason == "guard" and ep.at(0.2, 0.1).stopped_at == 0  # type: ignore[union-attr]
    assert ep.at(0.6, 0.4).record.stop_reason == "guard" and ep.at(0.6, 0.4).record.chosen == 9  # type: ignore[union-attr]
    assert ep.at(0.8, 0.4).record.stop_reason == "max_iter" and ep.at(0.8, 0.4).spend.vlm_calls == 2  # type: ignore[union-attr]
    grounded = replay_ground(_record(steps, "grounded", chosen=9), "best")
    assert grounded.at(0.8, 0.9).record.stop_reason == "grounded"  # type: ignore[union-attr]
    assert len(grounded.conf) == 1  # its re-rank is no guard decision


def test_the_agent_replays_its_warm_start_decision_only() -> None:
    steps = [_step(2, 0.3, 0.1, 4, 0.2, 0), _step(5, 0.7, 0.5, 9, 0.8, 1)]
    ep = replay_agent(_record(steps, "agent_submit"), "best")
    assert ep.at(0.2, 0.1).record is not None and ep.at(0.2, 0.1).record.chosen == 4
    assert ep.at(0.5, 0.1).record is None  # after the first VLM turn: not replayable
    evaluator = PointEvaluator([ep], MASK_IOU, bootstrap=0)
    point = evaluator.point(0.5, 0.1)
    assert point.value is None and point.settled == 0 and point.asked_fraction == 1.0


def test_points_gather_the_outcomes_and_share_identical_computations() -> None:
    first = replay_loop(_record(LOOP, "max_iter"), "best")
    second = replay_loop(_record(LOOP[:1], "refiner_exhausted", example_id="b:1:0", image_id="b"), "best")
    evaluator = PointEvaluator([first, second], MASK_IOU, bootstrap=50)
    point = evaluator.point(0.5, 0.2)
    assert point.value == pytest.approx((0.9 + 0.1) / 2)  # second never passes: its end (0.1)
    assert point.stops == {"guard": 1, "refiner_exhausted": 1}
    assert point.vlm_calls_per_1k == pytest.approx(1000 * (1 + 1) / 2)
    assert point.usd_per_1k == pytest.approx(1000 * (0.01 + 0.01) / 2)
    assert point.asked_fraction == 1.0 and point.ci is not None
    same = evaluator.point(0.55, 0.25)  # same outcomes: the cached point, relabelled
    assert (same.value, same.tau_conf, same.tau_gap) == (point.value, 0.55, 0.25)


def test_grid_parsing() -> None:
    assert Grid.parse(None).conf == tuple(round(i * 0.05, 6) for i in range(21))
    assert Grid.parse("0.25").gap == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert Grid.parse("0.5:0.2,0.1").pairs() == [
        (c, g) for c in (0.0, 0.5, 1.0) for g in (0.0, 0.1, 0.2, 1.0)
    ]
    for bad in ("x", "2", "0.5:abc", "-0.1:0"):
        with pytest.raises(InputError):
            Grid.parse(bad)


def _point(cost: float, value: float, tc: float) -> FrontierPoint:
    return FrontierPoint(tc, 0.0, 10, value, None, {}, 0, cost, 0, 0, 0, 0, {}, 10, value)


def test_the_pareto_front_matches_a_brute_force_check() -> None:
    rng = np.random.default_rng(3)
    points = [_point(float(c), float(v), i / 100) for i, (c, v) in enumerate(rng.integers(0, 6, (40, 2)))]
    mark_pareto(points, "asks")
    assert cost_axis(points) == "asks"
    groups = {(p.asks_per_1k, p.value) for p in points}
    optimal = {
        (c, v) for c, v in groups if not any(c2 <= c and v2 >= v for c2, v2 in groups if (c2, v2) != (c, v))
    }
    marked = {(p.asks_per_1k, p.value) for p in points if p.pareto}
    assert marked == optimal
    for key, members in itertools.groupby(
        sorted(points, key=lambda p: (p.asks_per_1k, p.value or 0.0)), key=lambda p: (p.asks_per_1k, p.value)
    ):
        assert sum(p.pareto for p in members) <= 1, key  # one per group of identical points
