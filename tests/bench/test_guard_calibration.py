"""The guard's calibration: reliability bins and ECE of conf and gap, per ranker, each ranking
counted once however many runs recorded it."""

from __future__ import annotations

import pytest

from bench.frontier.calibration import calibrations
from bench.records import RankedCandidateRecord, RankStepRecord, SampleRecord


def _rec(example: str, steps: list[tuple[float, float, float]]) -> SampleRecord:
    """A record whose ranking steps have (conf, gap, top-1 IoU)."""
    return SampleRecord(
        index=0,
        example_id=example,
        image_id=example.split(":")[0],
        sentence="x",
        rank_steps=[
            RankStepRecord(
                step=i,
                query=f"{example} q{i}",
                conf=conf,
                gap=gap,
                candidates=[RankedCandidateRecord(index=i, prob=conf, iou=iou)],
            )
            for i, (conf, gap, iou) in enumerate(steps)
        ],
    )


def test_reliability_and_ece_of_conf_and_gap() -> None:
    # conf 0.95 right 3 of 4 (acc 0.75, gap 0.2 each); conf 0.25 right 1 of 4 (acc 0.25, gap 0.05).
    records = [_rec(f"a{i}:1:0", [(0.95, 0.2, 0.9 if i < 3 else 0.1)]) for i in range(4)]
    records += [_rec(f"b{i}:1:0", [(0.25, 0.05, 0.6 if i < 1 else 0.3)]) for i in range(4)]
    (cal,) = calibrations([("run", "clip_rank", records)])
    conf = cal.reliability("conf")
    assert cal.n == 8 and len(cal.expressions) == 8
    by_bin = {(round(b.lo, 6), round(b.hi, 6)): b for b in conf.bins if b.n}
    assert set(by_bin) == {(0.9, 1.0), (0.2, 0.3)}
    assert by_bin[(0.9, 1.0)].n == 4 and by_bin[(0.9, 1.0)].accuracy == 0.75
    assert by_bin[(0.2, 0.3)].accuracy == 0.25
    assert conf.ece == pytest.approx(0.5 * abs(0.75 - 0.95) + 0.5 * abs(0.25 - 0.25))
    gap = cal.reliability("gap")
    assert gap.ece == pytest.approx(0.5 * abs(0.75 - 0.2) + 0.5 * abs(0.25 - 0.05))
    assert conf.accuracy == 0.5 and conf.mean == pytest.approx(0.6)


def test_a_conf_of_one_falls_in_the_last_bin() -> None:
    (cal,) = calibrations([("run", "r", [_rec("a:1:0", [(1.0, 1.0, 1.0)])])])
    assert cal.reliability("conf").bins[-1].n == 1 and cal.reliability("conf").ece == 0.0


def test_rankers_are_apart_and_a_ranking_two_runs_recorded_counts_once() -> None:
    shared = [_rec("a:1:0", [(0.6, 0.3, 0.9), (0.7, 0.4, 0.9)])]
    cals = calibrations(
        [
            ("loop", "clip_rank", shared),
            ("oneshot", "clip_rank", [_rec("a:1:0", [(0.6, 0.3, 0.9)])]),  # the same first ranking
            ("sam3", "sam3_rank", [_rec("a:1:0", [(0.2, 0.1, 0.0)])]),
        ]
    )
    assert [(c.ranker, c.n) for c in cals] == [("clip_rank", 2), ("sam3_rank", 1)]
    assert cals[0].runs == ["loop"]  # the one-shot run added nothing new


def test_steps_without_scores_are_left_out() -> None:
    old = _rec("a:1:0", [(0.6, 0.3, 0.9)])
    old.rank_steps[0].candidates[0].iou = None  # a record written before candidates were scored
    assert calibrations([("old", "clip_rank", [old])]) == []
