"""Evaluation protocols: how a prediction is scored against the ground truth, per example and
over a run.

A protocol has three parts:

- **per example**, :meth:`EvalProtocol.score` turns a predicted mask and a
  :class:`GroundTruth` (the target mask, empty when the expression has no target, and an
  optional ``ignore`` region left out of scoring) into an :class:`ExampleScore`: intersection,
  union, ground-truth and predicted areas, and any per-example numbers of the protocol's own
  (``extra``, stored as the record's ``scores``). These become fields of the
  ``samples.jsonl`` line.
- **over the run**, each :class:`Metric` is a ratio of sums over the records it applies to:
  ``sum(numerator) / sum(denominator)``. A mean (mIoU, Pr@0.5, N-acc) has denominator 1; a
  cumulative ratio (cIoU) has the union. Its 95% interval is a percentile bootstrap that
  resamples **images** (the expressions of one image are not independent).
- **breakdowns** (:class:`Breakdown`) group the records (by object size, by a tag of the
  example such as short or long query) and compute named metrics within each group.

The protocol's ``headline`` metric is the one a run is known by (the paired comparison of
``bench report A B`` uses it). Failed examples count: a failed record has IoU 0, no
prediction, and its ground truth's area as its union.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.metrics import DEFAULT_BOOTSTRAP, cluster_ratio_ci
from bench.records import GroupMetrics, MetricsSummary, SampleRecord

RecordFn = Callable[[SampleRecord], float]


@dataclass(frozen=True)
class GroundTruth:
    """What an example's prediction is scored against.

    Attributes:
        mask: ``(H, W) bool`` target; all False when the expression refers to nothing.
        ignore: ``(H, W) bool`` pixels left out of scoring (neither right nor wrong), or ``None``.
    """

    mask: np.ndarray
    ignore: np.ndarray | None = None


@dataclass(frozen=True)
class ExampleScore:
    """One example's pixel counts (``ignore`` pixels excluded) and the protocol's extras."""

    inter: int
    union: int
    gt_area: int
    pred_area: int
    extra: Mapping[str, float] = field(default_factory=dict)

    @property
    def iou(self) -> float:
        """Intersection over union; 1.0 when prediction and target are both empty."""
        return 1.0 if self.union == 0 else self.inter / self.union


def score_masks(pred: np.ndarray, truth: GroundTruth) -> ExampleScore:
    """Pixel counts of ``pred`` against ``truth``, outside its ``ignore`` region.

    Raises:
        ValueError: the masks differ in shape.
    """
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(truth.mask, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    if truth.ignore is not None:
        keep = ~np.asarray(truth.ignore, dtype=bool)
        p, g = p & keep, g & keep
    return ExampleScore(
        inter=int(np.count_nonzero(p & g)),
        union=int(np.count_nonzero(p | g)),
        gt_area=int(np.count_nonzero(g)),
        pred_area=int(np.count_nonzero(p)),
    )


def _one(_rec: SampleRecord) -> float:
    return 1.0


def _every(_rec: SampleRecord) -> bool:
    return True


@dataclass(frozen=True)
class Metric:
    """A number over a run: ``sum(numerator) / sum(denominator)`` over the records it applies to.

    Attributes:
        key: its key in ``summary.json`` (``miou``, ``pr@0.5``, ...).
        label: how tables and the viewer name it (``mIoU``).
        description: one line: what it measures.
        numerator: per record.
        denominator: per record (1 for a mean).
        applies: which records it is over (e.g. only expressions without a target).
        empty: its value when the denominators sum to 0 over records it applies to (cIoU of
            empty masks only: 1.0).
        interval: whether a bootstrap interval is computed (``<key>_ci``).
    """

    key: str
    label: str
    description: str
    numerator: RecordFn
    denominator: RecordFn = _one
    applies: Callable[[SampleRecord], bool] = _every
    empty: float = 1.0
    interval: bool = True

    def columns(self, records: Sequence[SampleRecord]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Numerators, denominators and image ids of the records it applies to."""
        kept = [r for r in records if self.applies(r)]
        num = np.array([self.numerator(r) for r in kept], dtype=np.float64)
        den = np.array([self.denominator(r) for r in kept], dtype=np.float64)
        return num, den, [r.image_id for r in kept]

    def value(self, records: Sequence[SampleRecord]) -> float | None:
        """The metric over ``records``; ``None`` when it applies to none of them."""
        num, den, _ = self.columns(records)
        if num.size == 0:
            return None
        total = float(den.sum())
        return self.empty if total == 0 else float(num.sum()) / total


@dataclass(frozen=True)
class Breakdown:
    """Metrics within groups of the records.

    Attributes:
        key: its key under ``metrics.breakdowns`` in ``summary.json`` (``size``).
        label: how reports name it.
        group: a record's group, or ``None`` to leave it out (e.g. unknown size).
        groups: the groups always shown, in this order (others follow, sorted).
        metrics: keys of the protocol's metrics computed per group.
    """

    key: str
    label: str
    group: Callable[[SampleRecord], str | None]
    groups: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("miou",)


Scorer = Callable[[np.ndarray, GroundTruth], ExampleScore]


@dataclass(frozen=True)
class EvalProtocol:
    """How a data set is scored (see the module docstring).

    Attributes:
        name: how ``summary.json`` and ``refseg bench datasets`` name it.
        description: one line.
        metrics: in the order reports show them.
        headline: the key of the metric a run is known by.
        breakdowns: groupings reports show.
        scorer: per-example scoring (default :func:`score_masks`).
        empty_targets: expressions may refer to nothing (gRefCOCO's no-target ones): a run's
            default is then to answer a controller's "no such object" (stop reason
            ``not_found``) with an empty mask instead of its best candidate
            (:attr:`agent.episode.EpisodeConfig.not_found`).
    """

    name: str
    description: str
    metrics: tuple[Metric, ...]
    headline: str
    breakdowns: tuple[Breakdown, ...] = ()
    scorer: Scorer = score_masks
    empty_targets: bool = False

    def __post_init__(self) -> None:
        keys = [m.key for m in self.metrics]
        if self.headline not in keys:
            raise ValueError(f"protocol {self.name}: headline {self.headline!r} is not one of its metrics")
        if len(set(keys)) != len(keys):
            raise ValueError(f"protocol {self.name}: duplicate metric keys")
        for b in self.breakdowns:
            unknown = [k for k in b.metrics if k not in keys]
            if unknown:
                raise ValueError(f"protocol {self.name}: breakdown {b.key} names unknown metric(s) {unknown}")

    def metric(self, key: str) -> Metric:
        """The metric of that key (``KeyError`` when the protocol has none)."""
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)

    def score(self, pred: np.ndarray, truth: GroundTruth) -> ExampleScore:
        return self.scorer(pred, truth)

    def summarize(
        self, records: Sequence[SampleRecord], *, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0
    ) -> MetricsSummary:
        """Every metric over ``records`` (with 95% intervals when ``bootstrap`` > 0) and the
        breakdowns: the ``metrics`` block of ``summary.json``."""
        values: dict[str, Any] = {}
        for m in self.metrics:
            values[m.key] = m.value(records)
            if m.interval:
                values[f"{m.key}_ci"] = self._interval(m, records, bootstrap, seed)
        breakdowns = {b.key: self._breakdown(b, records) for b in self.breakdowns}
        return MetricsSummary(
            protocol=self.name, headline=self.headline, n=len(records), breakdowns=breakdowns, **values
        )

    def _interval(
        self, metric: Metric, records: Sequence[SampleRecord], bootstrap: int, seed: int
    ) -> list[float] | None:
        num, den, images = metric.columns(records)
        if bootstrap <= 0 or num.size == 0:
            return None
        lo, hi = cluster_ratio_ci(num, den, images, B=bootstrap, seed=seed, empty=metric.empty)
        return [lo, hi]

    def _breakdown(self, breakdown: Breakdown, records: Sequence[SampleRecord]) -> dict[str, GroupMetrics]:
        groups: dict[str, list[SampleRecord]] = {g: [] for g in breakdown.groups}
        for r in records:
            label = breakdown.group(r)
            if label is not None:
                groups.setdefault(label, []).append(r)
        order = [*breakdown.groups, *sorted(set(groups) - set(breakdown.groups))]
        return {
            g: GroupMetrics(
                n=len(groups[g]), **{k: self.metric(k).value(groups[g]) for k in breakdown.metrics}
            )
            for g in order
        }

    def describe(self) -> dict[str, Any]:
        """The protocol in words (``refseg bench datasets``)."""
        return {
            "name": self.name,
            "description": self.description,
            "headline": self.headline,
            "empty_targets": self.empty_targets,
            "metrics": [{"key": m.key, "label": m.label, "description": m.description} for m in self.metrics],
            "breakdowns": [
                {"key": b.key, "label": b.label, "groups": list(b.groups)} for b in self.breakdowns
            ],
        }
