"""How well the guard's numbers know when the ranking is right: reliability and calibration error.

Every ranking step a run recorded is one guard decision: the ranker's top-1 probability
(``conf``) and its margin over the second (``gap``), and whether its top-1 candidate is the
right object (IoU >= 0.5 against the ground truth, as recorded with the step). Binned by
``conf`` (ten equal bins), a calibrated ranker's accuracy in each bin equals its mean
``conf``; the expected calibration error (ECE) is the mean absolute difference, weighted by
the bins' sizes. The same is done for ``gap``, read as a probability of being right (it is
not one by construction; its reliability says how far the guard can trust it).

Steps are grouped by ranker (the run's ``ranker``: CLIP, the offline ranker, a plugin's), so
runs of different rankers are told apart; a ranking that several runs recorded alike (the same
expression, query and candidates with the same probabilities) counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.records import SampleRecord

RIGHT_IOU = 0.5
BINS = 10


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram: ``[lo, hi)`` (the last one includes 1)."""

    lo: float
    hi: float
    n: int
    mean: float | None  # the mean score of its steps
    accuracy: float | None  # the fraction whose top-1 is right


@dataclass(frozen=True)
class Reliability:
    """The reliability of one score (``conf`` or ``gap``) of one ranker."""

    score: str
    bins: tuple[Bin, ...]
    ece: float | None
    accuracy: float | None  # over all steps
    mean: float | None  # of the score, over all steps

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "ece": self.ece,
            "accuracy": self.accuracy,
            "mean": self.mean,
            "bins": [b.__dict__ for b in self.bins],
        }


@dataclass
class Calibration:
    """A ranker's guard decisions: their reliability by ``conf`` and by ``gap``."""

    ranker: str
    runs: list[str] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    expressions: set[str] = field(default_factory=set)
    _seen: set[tuple[Any, ...]] = field(default_factory=set, repr=False)

    @property
    def n(self) -> int:
        return len(self.right)

    def add(self, run: str, records: Iterable[SampleRecord]) -> None:
        """Add every scored ranking step of ``records`` (``run`` names where they came from)."""
        added = False
        for rec in records:
            for step in rec.rank_steps:
                top = step.candidates[0] if step.candidates else None
                if top is None or top.iou is None or step.conf is None or step.gap is None:
                    continue
                key = (rec.example_id, step.query, tuple((c.index, c.prob) for c in step.candidates))
                if key in self._seen:
                    continue
                self._seen.add(key)
                self.conf.append(step.conf)
                self.gap.append(step.gap)
                self.right.append(top.iou >= RIGHT_IOU)
                self.expressions.add(rec.example_id)
                added = True
        if added and run not in self.runs:
            self.runs.append(run)

    def reliability(self, score: str, bins: int = BINS) -> Reliability:
        """The reliability diagram and ECE of ``score`` (``conf`` or ``gap``)."""
        values = np.clip(np.asarray(self.conf if score == "conf" else self.gap, dtype=np.float64), 0, 1)
        right = np.asarray(self.right, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        out, ece = [], 0.0
        for b in range(bins):
            inside = which == b
            n = int(inside.sum())
            mean = float(values[inside].mean()) if n else None
            acc = float(right[inside].mean()) if n else None
            if n and mean is not None and acc is not None:
                ece += n / len(values) * abs(acc - mean)
            out.append(Bin(float(edges[b]), float(edges[b + 1]), n, mean, acc))
        empty = len(values) == 0
        return Reliability(
            score,
            tuple(out),
            None if empty else ece,
            None if empty else float(right.mean()),
            None if empty else float(values.mean()),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ranker": self.ranker,
            "runs": self.runs,
            "steps": self.n,
            "expressions": len(self.expressions),
            "right_iou": RIGHT_IOU,
            "conf": self.reliability("conf").as_json(),
            "gap": self.reliability("gap").as_json(),
        }


def calibrations(runs: Sequence[tuple[str, str, Iterable[SampleRecord]]]) -> list[Calibration]:
    """One :class:`Calibration` per ranker, from ``(run name, ranker, records)``; rankers
    without a scored step (runs written before steps carried IoUs) are left out."""
    by: dict[str, Calibration] = {}
    for name, ranker, records in runs:
        by.setdefault(ranker, Calibration(ranker)).add(name, records)
    return [c for c in by.values() if c.n]
