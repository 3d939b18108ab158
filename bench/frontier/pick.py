"""Choose the guard's thresholds on some images and score them on others (``--pick-thresholds``).

Tuning the thresholds on the images a report then scores would flatter them. So the choice
is made on one set of images (a held-out fraction of the run's images, drawn by a digest of
each image id, so the same images every time; or another split of the data set) by a rule
(the best metric at a price cap, or the cheapest pair that reaches a target), and the report
scores the chosen pair on the other images only: exactly, by the same replay.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.frontier.frontier import compute_frontier
from bench.frontier.grid import Grid
from bench.frontier.options import PickOptions
from bench.frontier.points import FrontierPoint, PointEvaluator
from bench.frontier.replay import replay_run
from bench.frontier.source import FrontierError, FrontierSource

_SALT = b"refseg-pick-thresholds:"


def chooses(image_id: str, fraction: float) -> bool:
    """Whether an image is among the ``fraction`` that choose (a digest of its id decides)."""
    digest = hashlib.sha256(_SALT + image_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_source(src: FrontierSource, fraction: float) -> tuple[FrontierSource, FrontierSource]:
    """``(choosing, scoring)``: the run's records of the images that choose, and of the others.

    Raises:
        FrontierError: one side has no image (too few images for this fraction).
    """
    choose = [r for r in src.records if chooses(r.image_id, fraction)]
    score = [r for r in src.records if not chooses(r.image_id, fraction)]
    if not choose or not score:
        images = len({r.image_id for r in src.records})
        raise FrontierError(
            f"--pick-fraction {fraction:g} of {images} image(s) leaves no image to "
            f"{'choose' if not choose else 'score'} on; use more images (--n) or another fraction"
        )
    return dataclasses.replace(src, records=choose), dataclasses.replace(src, records=score)


def pick_point(points: Sequence[FrontierPoint], options: PickOptions) -> FrontierPoint | None:
    """The pair the rule picks: the best metric within the price cap (then the cheapest), or
    the cheapest pair reaching the target (then the best metric); ``None`` when none qualifies."""
    known = [p for p in points if p.value is not None]

    def cheap(p: FrontierPoint) -> tuple[float, float, float]:
        return (p.usd_per_1k, p.vlm_calls_per_1k, p.asks_per_1k)

    if options.max_usd_per_1k is not None:
        within = [p for p in known if p.usd_per_1k <= options.max_usd_per_1k + 1e-12]
        return min(within, key=lambda p: (-(p.value or 0.0), *cheap(p)), default=None)
    target = options.target if options.target is not None else 0.0
    reaching = [p for p in known if (p.value or 0.0) >= target]
    return min(reaching, key=lambda p: (*cheap(p), -(p.value or 0.0)), default=None)


@dataclass
class PickResult:
    """What ``--pick-thresholds`` chose, where, and what the chosen pair scored elsewhere."""

    source: str
    rule: str
    chose_on: str
    scored_on: str
    choosing_images: list[str]
    scoring_images: list[str]
    chosen: FrontierPoint | None
    scored: FrontierPoint | None
    scored_one_shot: FrontierPoint
    scored_always_ask: FrontierPoint
    headline: str
    free: bool = False  # every pair cost $0 on the choosing images (no VLM): a cap cannot bind

    def as_json(self) -> dict[str, Any]:
        def point(p: FrontierPoint | None) -> dict[str, Any] | None:
            return p.as_json(self.headline) if p is not None else None

        return {
            "source": self.source,
            "rule": self.rule,
            "chose_on": self.chose_on,
            "scored_on": self.scored_on,
            "thresholds": [self.chosen.tau_conf, self.chosen.tau_gap] if self.chosen else None,
            "chosen_on_choosing_images": point(self.chosen),
            "scored": point(self.scored),
            "scored_one_shot": point(self.scored_one_shot),
            "scored_always_ask": point(self.scored_always_ask),
            "choosing_images": self.choosing_images,
            "scoring_images": self.scoring_images,
            "free": self.free,
        }


def pick_thresholds(
    choosing: FrontierSource,
    scoring: FrontierSource,
    options: PickOptions,
    *,
    grid: Grid | None = None,
    bootstrap: int = 0,
    chose_on: str,
    scored_on: str,
) -> PickResult:
    """Choose on ``choosing``'s records by ``options``' rule; score the pair on ``scoring``'s.

    Raises:
        FrontierError: either run cannot be replayed.
    """
    chose = compute_frontier(choosing, grid, bootstrap=0)
    chosen = pick_point(chose.points, options)
    evaluator = PointEvaluator(replay_run(scoring), scoring.protocol, bootstrap=bootstrap)
    scored = evaluator.point(chosen.tau_conf, chosen.tau_gap) if chosen is not None else None
    return PickResult(
        source=scoring.name,
        rule=options.rule,
        chose_on=chose_on,
        scored_on=scored_on,
        choosing_images=sorted({r.image_id for r in choosing.records}),
        scoring_images=sorted({r.image_id for r in scoring.records}),
        chosen=chosen,
        scored=scored,
        scored_one_shot=evaluator.point(0.0, 0.0),
        scored_always_ask=evaluator.point(1.0, 1.0),
        headline=chose.headline,
        free=all(p.usd_per_1k == 0 for p in chose.points),
    )
