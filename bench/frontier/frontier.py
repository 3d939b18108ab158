"""The cost-quality frontier of a run at thresholds 1/1: every grid point, the Pareto front.

A point's cost is what asking for help cost per 1,000 expressions, on one axis for the whole
frontier (:func:`cost_axis`): USD from an empty cache when any point spent some, else VLM
calls, else (the rules refiner: no VLM, $0) the refiner's calls. A point is Pareto-optimal
when no other point costs no more and scores higher; pairs that give every expression the
same outcome are one point (the lowest pair stands for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.frontier.grid import Grid
from bench.frontier.points import FrontierPoint, PointEvaluator
from bench.frontier.replay import exact, replay_run
from bench.frontier.source import FrontierSource
from bench.metrics import DEFAULT_BOOTSTRAP

COST_LABELS = {
    "usd": "USD per 1,000 expressions (from an empty cache)",
    "vlm_calls": "VLM calls per 1,000 expressions",
    "asks": "refiner calls per 1,000 expressions (rules refiner: no VLM, $0)",
}


@dataclass(frozen=True)
class Mark:
    """A threshold pair to mark on the frontier (e.g. the thresholds a run used)."""

    label: str
    tau_conf: float
    tau_gap: float


@dataclass(frozen=True)
class Measured:
    """A real run's own point, drawn beside the replay (its thresholds' replayed point should
    coincide with it)."""

    label: str
    costs: dict[str, float]
    value: float | None


@dataclass
class Frontier:
    """Every grid point of one run, with the one-shot and always-ask ends and the marks."""

    name: str
    run_dir: Path
    controller: str
    ranker: str
    protocol: str
    headline: str
    headline_label: str
    exact: bool
    cost_axis: str
    n_expressions: int
    n_images: int
    grid: Grid
    points: list[FrontierPoint]
    one_shot: FrontierPoint
    always_ask: FrontierPoint
    marks: list[tuple[Mark, FrontierPoint]] = field(default_factory=list)
    measured: list[Measured] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cost_label(self) -> str:
        return COST_LABELS[self.cost_axis]

    def pareto(self) -> list[FrontierPoint]:
        """The Pareto-optimal points, cheapest first."""
        return sorted((p for p in self.points if p.pareto), key=lambda p: p.cost(self.cost_axis))

    def as_json(self) -> dict[str, Any]:
        """What ``frontier.json`` holds: the run, the axes, the ends, the marks, every point."""
        key = self.headline
        return {
            "run": str(self.run_dir),
            "controller": self.controller,
            "ranker": self.ranker,
            "protocol": self.protocol,
            "metric": key,
            "metric_label": self.headline_label,
            "exact": self.exact,
            "cost_axis": self.cost_axis,
            "cost_label": self.cost_label,
            "costs": "tokens and USD from an empty cache; calls whether the cache served them or not",
            "n_expressions": self.n_expressions,
            "n_images": self.n_images,
            "grid": {"tau_conf": list(self.grid.conf), "tau_gap": list(self.grid.gap)},
            "one_shot": self.one_shot.as_json(key),
            "always_ask": self.always_ask.as_json(key),
            "marks": [{"label": m.label, **p.as_json(key)} for m, p in self.marks],
            "measured": [{"label": m.label, key: m.value, **m.costs} for m in self.measured],
            "notes": self.notes,
            "points": [p.as_json(key) for p in self.points],
        }


def cost_axis(points: Sequence[FrontierPoint]) -> str:
    """``usd`` when any point spent USD, else ``vlm_calls`` when any asked the VLM, else ``asks``."""
    for axis in ("usd", "vlm_calls"):
        if any(p.cost(axis) > 0 for p in points):
            return axis
    return "asks"


def mark_pareto(points: Sequence[FrontierPoint], axis: str) -> None:
    """Set ``pareto`` on the Pareto-optimal points (one per group of identical points)."""
    groups: dict[tuple[float, float | None], list[FrontierPoint]] = {}
    for p in points:
        groups.setdefault((round(p.cost(axis), 9), p.value), []).append(p)
    reps = []
    for members in groups.values():
        rep = min(members, key=lambda p: (p.tau_conf, p.tau_gap))
        rep.same_as = [(p.tau_conf, p.tau_gap) for p in members if p is not rep]
        if rep.value is not None:
            reps.append(rep)
    best = None
    for p in sorted(reps, key=lambda p: (p.cost(axis), -(p.value or 0.0))):
        if best is None or (p.value or 0.0) > best:
            p.pareto, best = True, p.value or 0.0


def compute_frontier(
    src: FrontierSource,
    grid: Grid | None = None,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    marks: Sequence[Mark] = (),
    measured: Sequence[Measured] = (),
    intervals: str = "all",
) -> Frontier:
    """Replay ``src`` (a run at thresholds 1/1) at every pair of ``grid``.

    ``intervals``: ``all`` computes every point's 95% interval; ``front`` only those of the
    Pareto front, the ends and the marks (a bootstrap per point costs time on large runs).

    Raises:
        FrontierError: the run cannot be replayed (another controller, other thresholds, old
            records); the message says how to make one that can.
    """
    grid = grid or Grid.step()
    episodes = replay_run(src)
    evaluator = PointEvaluator(episodes, src.protocol, bootstrap=bootstrap)
    points = [evaluator.point(c, g, interval=intervals == "all") for c, g in grid.pairs()]
    axis = cost_axis(points)
    mark_pareto(points, axis)
    for p in points:
        if p.pareto:
            evaluator.fill_interval(p)
    notes = list(src.notes)
    if not exact(src):
        notes.append(
            "agent: only the warm-start guard decision is replayable (after its first VLM turn "
            "the VLM sees which rankings pass the guard); per pair: the expressions the warm "
            "start settles, and the metric over them"
        )
    headline = src.protocol.metric(src.protocol.headline)
    return Frontier(
        name=src.name,
        run_dir=src.run_dir,
        controller=src.controller,
        ranker=src.ranker,
        protocol=src.protocol.name,
        headline=headline.key,
        headline_label=headline.label,
        exact=exact(src),
        cost_axis=axis,
        n_expressions=len(episodes),
        n_images=len({ep.image_id for ep in episodes}),
        grid=grid,
        points=points,
        one_shot=evaluator.point(0.0, 0.0),
        always_ask=evaluator.point(1.0, 1.0),
        marks=[(m, evaluator.point(m.tau_conf, m.tau_gap)) for m in marks],
        measured=list(measured),
        notes=notes,
    )
