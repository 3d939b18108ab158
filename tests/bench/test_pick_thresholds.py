"""``bench suite --pick-thresholds``: thresholds chosen on some images by a rule, scored on the
others only; the images are drawn by a digest of their id; bad flags are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_runner import run, synthetic

from bench.cli import main
from bench.frontier.options import PickOptions
from bench.frontier.pick import chooses, pick_point, split_source
from bench.frontier.points import FrontierPoint
from bench.frontier.source import FrontierError, read_source
from bench.samples import read_samples


def _point(tc: float, value: float, usd: float, asks: float = 0.0) -> FrontierPoint:
    return FrontierPoint(tc, 0.0, 10, value, None, {}, 0.0, asks, 0.0, usd, 0.0, 0.0, {}, 10, value)


def test_images_are_drawn_by_a_digest_of_their_id() -> None:
    ids = [f"img-{i}" for i in range(2000)]
    first = [chooses(i, 0.3) for i in ids]
    assert first == [chooses(i, 0.3) for i in ids]  # the same images every time
    assert 0.27 < sum(first) / len(ids) < 0.33
    assert all(chooses(i, 0.6) for i, c in zip(ids, first, strict=True) if c)  # nested fractions


def test_the_rules_pick_the_best_within_the_cap_or_the_cheapest_reaching_the_target() -> None:
    points = [_point(0.0, 0.60, 0.0), _point(0.3, 0.70, 1.0), _point(0.5, 0.72, 2.0), _point(0.7, 0.72, 3.0)]
    cap = PickOptions(enabled=True, max_usd_per_1k=2.5)
    assert pick_point(points, cap).tau_conf == 0.5  # type: ignore[union-attr]
    assert pick_point(points, PickOptions(enabled=True, max_usd_per_1k=0.5)).tau_conf == 0.0  # type: ignore[union-attr]
    assert pick_point(points, PickOptions(enabled=True, target=0.71)).tau_conf == 0.5  # type: ignore[union-attr]
    assert pick_point(points, PickOptions(enabled=True, target=0.9)) is None
    free = [_point(0.1, 0.8, 0.0, asks=300.0), _point(0.2, 0.8, 0.0, asks=100.0)]
    assert pick_point(free, PickOptions(enabled=True, max_usd_per_1k=1)).tau_conf == 0.2  # type: ignore[union-attr]


def test_pick_options_need_exactly_one_rule() -> None:
    for kwargs in ({}, {"max_usd_per_1k": 1.0, "target": 0.5}):
        with pytest.raises(Exception, match="needs one rule"):
            PickOptions(enabled=True, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="--pick-fraction"):
        PickOptions(enabled=True, target=0.5, fraction=1.0)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--max-usd-per-1k", "1"], "--max-usd-per-1k only apply with --pick-thresholds"),
        (["--pick-thresholds"], "needs one rule"),
        (["--pick-thresholds", "--target-metric", "0.5", "--experiments", "main"], "add frontier"),
        (["--pick-thresholds", "--target-metric", "0.5", "--pick-fraction", "0"], "--pick-fraction"),
    ],
)
def test_bad_pick_flags_are_one_line(
    tmp_path: Path, flags: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "suite", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    assert main([*args, "--out", str(tmp_path / "s"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "s").exists()  # refused before any run


def test_too_few_images_for_the_fraction_is_an_error(tmp_path: Path) -> None:
    run(tmp_path / "ask", None, synthetic(1), episode={"tau_conf": 1.0, "tau_gap": 1.0})
    with pytest.raises(FrontierError, match="leaves no image"):
        split_source(read_source(tmp_path / "ask"), 0.5)


@pytest.mark.slow
def test_the_suite_picks_on_held_out_images_and_scores_on_the_others(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    args = ["bench", "suite", "--dataset", "synthetic", "--n", "6", "--toolset", "offline", "--quiet"]
    args += ["--out", str(out), "--experiments", "main,frontier", "--max-iters", "3", "--bootstrap", "50"]
    assert main([*args, "--pick-thresholds", "--target-metric", "0.9"]) == 0
    (pick,) = json.loads((out / "pick.json").read_text())["picks"]
    choosing, scoring = set(pick["choosing_images"]), set(pick["scoring_images"])
    assert choosing and scoring and not choosing & scoring
    assert choosing | scoring == {f"scene-{i}" for i in range(6)}
    assert all(chooses(i, 0.5) for i in choosing) and not any(chooses(i, 0.5) for i in scoring)
    tc, tg = pick["thresholds"]
    assert pick["chosen_on_choosing_images"]["miou"] >= 0.9
    # A real run at the picked thresholds, scored on the scoring images only, gives the report's number.
    real = tmp_path / "real"
    run(real, None, synthetic(6), spec=None, episode={"tau_conf": tc, "tau_gap": tg})
    records, _ = read_samples(real)
    on_scoring = [r for r in sorted(records.values(), key=lambda r: r.index) if r.image_id in scoring]
    assert pick["scored"]["miou"] == pytest.approx(
        sum(r.iou for r in on_scoring) / len(on_scoring), abs=1e-12
    )
    report = (out / "report.md").read_text()
    assert "## Guard thresholds picked on held-out images, scored on the others" in report
    assert "picked, scored" in report
    n_choosing = sum(r.image_id in choosing for r in records.values())
    assert f"chose on: {len(choosing)} images ({n_choosing} expressions: " in report
    assert ", ".join(sorted(choosing)) in report and ", ".join(sorted(scoring)) in report
    assert "(figures/frontier.png)" in report and "(figures/calibration.png)" in report
