"""One frontier point: the protocol's metrics and what asking for help cost, at a threshold pair.

:class:`PointEvaluator` lays the replayed outcomes out as arrays once (episode x outcome x
metric), so a point is a gather and a few sums; points whose thresholds give every episode
the same outcome share one computation (and one bootstrap).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.data.protocol import EvalProtocol, Metric
from bench.frontier.replay import EpisodeReplay
from bench.metrics import DEFAULT_BOOTSTRAP, cluster_ratio_ci

PER = 1000.0  # costs are per 1,000 expressions
COST_KEYS = ("vlm_calls", "asks", "tokens", "usd")


@dataclass
class FrontierPoint:
    """What a run gives at one threshold pair (every number over its expressions).

    Attributes:
        value, ci: the protocol's headline metric and its 95% interval (a bootstrap over
            images); ``None`` when an outcome is not replayable (``agent`` past its warm start).
        metrics: every metric of the protocol (same caveat).
        vlm_calls_per_1k: calls that asked the VLM, per 1,000 expressions.
        asks_per_1k: calls that asked for help past the ranking (refiner or VLM).
        tokens_per_1k, usd_per_1k: VLM tokens and USD from an empty cache (cold).
        asked_fraction: expressions that asked the VLM at least once.
        escalated_fraction: expressions that asked for help (refiner or VLM) at least once.
        stops: stop reasons.
        settled, settled_value: expressions whose outcome is known and the headline over them
            (all of them, and ``value``, except for ``agent``).
    """

    tau_conf: float
    tau_gap: float
    n: int
    value: float | None
    ci: tuple[float, float] | None
    metrics: dict[str, float | None]
    vlm_calls_per_1k: float
    asks_per_1k: float
    tokens_per_1k: float
    usd_per_1k: float
    asked_fraction: float
    escalated_fraction: float
    stops: dict[str, int]
    settled: int
    settled_value: float | None
    pareto: bool = False
    same_as: list[tuple[float, float]] = field(default_factory=list)

    def cost(self, axis: str) -> float:
        """The cost on ``axis`` (``usd``, ``vlm_calls`` or ``asks``), per 1,000 expressions."""
        return float(getattr(self, f"{axis}_per_1k"))

    def as_json(self, headline: str) -> dict[str, Any]:
        """The point as ``frontier.json`` lists it (the headline under its own key)."""
        return {
            "tau_conf": self.tau_conf,
            "tau_gap": self.tau_gap,
            headline: self.value,
            f"{headline}_ci": list(self.ci) if self.ci is not None else None,
            "metrics": self.metrics,
            "vlm_calls_per_1k": self.vlm_calls_per_1k,
            "asks_per_1k": self.asks_per_1k,
            "tokens_per_1k": self.tokens_per_1k,
            "usd_per_1k": self.usd_per_1k,
            "asked_fraction": self.asked_fraction,
            "escalated_fraction": self.escalated_fraction,
            "stops": self.stops,
            "n": self.n,
            "settled": self.settled,
            "settled_value": self.settled_value,
            "pareto": self.pareto,
        }


def _pad(rows: list[np.ndarray], width: int, fill: float) -> np.ndarray:
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class PointEvaluator:
    """Frontier points of a set of replayed episodes (see the module docstring).

    Args:
        episodes: the run's episodes (:func:`bench.frontier.replay.replay_run`).
        protocol: scores them; its headline is the frontier's metric.
        bootstrap: resamples of the headline's interval (0: none).
        seed: the bootstrap's seed.
    """

    def __init__(
        self,
        episodes: list[EpisodeReplay],
        protocol: EvalProtocol,
        *,
        bootstrap: int = DEFAULT_BOOTSTRAP,
        seed: int = 0,
    ):
        self.episodes = episodes
        self.protocol = protocol
        self.headline = protocol.metric(protocol.headline)
        self.bootstrap, self.seed = bootstrap, seed
        width = max((len(ep.outcomes) for ep in episodes), default=1)
        self.n_checks = np.array([len(ep.conf) for ep in episodes], dtype=np.int64)
        self.conf = _pad([ep.conf for ep in episodes], max(width - 1, 1), -np.inf)
        self.gap = _pad([ep.gap for ep in episodes], max(width - 1, 1), -np.inf)
        self.images = np.array([ep.image_id for ep in episodes], dtype=object)
        self._layout(width)
        self._cache: dict[bytes, FrontierPoint] = {}

    def _layout(self, width: int) -> None:
        """Per episode and outcome: known?, stop reason, costs, and each metric's terms."""
        shape = (len(self.episodes), width)
        self.known = np.zeros(shape, dtype=bool)
        self.stop: list[list[str]] = []
        self.costs = {k: np.zeros(shape) for k in (*COST_KEYS, "asked", "escalated")}
        metrics = self.protocol.metrics
        self.applies = np.zeros((*shape, len(metrics)), dtype=bool)
        self.num = np.zeros((*shape, len(metrics)))
        self.den = np.zeros((*shape, len(metrics)))
        for e, ep in enumerate(self.episodes):
            stops = []
            for j, out in enumerate(ep.outcomes):
                s = out.spend
                row = {"vlm_calls": s.vlm_calls, "asks": s.asks, "usd": s.cold_usd}
                row |= {"tokens": s.cold_tokens_in + s.cold_tokens_out}
                row |= {"asked": s.vlm_calls > 0, "escalated": s.asks > 0}
                for key, value in row.items():
                    self.costs[key][e, j] = value
                rec = out.record
                stops.append(rec.stop_reason if rec is not None else "?")
                if rec is None:
                    continue
                self.known[e, j] = True
                for m, metric in enumerate(metrics):
                    if metric.applies(rec):
                        self.applies[e, j, m] = True
                        self.num[e, j, m] = metric.numerator(rec)
                        self.den[e, j, m] = metric.denominator(rec)
            self.stop.append(stops)

    def indices(self, tau_conf: float, tau_gap: float) -> np.ndarray:
        """Each episode's outcome at the thresholds (its first passing check, else its end)."""
        passes = (self.conf >= tau_conf) & (self.gap >= tau_gap)
        first = np.argmax(passes, axis=1)
        return np.where(passes.any(axis=1), first, self.n_checks)

    def point(self, tau_conf: float, tau_gap: float, *, interval: bool = True) -> FrontierPoint:
        """The frontier point at ``(tau_conf, tau_gap)`` (``interval=False``: without its CI
        for now; :meth:`fill_interval` adds it)."""
        idx = self.indices(tau_conf, tau_gap)
        key = idx.tobytes()
        if key not in self._cache:
            self._cache[key] = self._compute(idx, tau_conf, tau_gap)
        cached = self._cache[key]
        point = (
            cached
            if (cached.tau_conf, cached.tau_gap) == (tau_conf, tau_gap)
            else _relabelled(cached, tau_conf, tau_gap)
        )
        if interval:
            self.fill_interval(point)
        return point

    def fill_interval(self, point: FrontierPoint) -> None:
        """Compute ``point.ci`` (the headline's bootstrap interval over images) if it has none."""
        if point.ci is not None or point.value is None:
            return
        idx = self.indices(point.tau_conf, point.tau_gap)
        h = [m.key for m in self.protocol.metrics].index(self.headline.key)
        point.ci = self._interval(h, np.arange(len(self.episodes)), idx)

    def _metric(self, m: int, metric: Metric, rows: np.ndarray, idx: np.ndarray) -> float | None:
        applies = self.applies[rows, idx, m] & self.known[rows, idx]
        if not applies.any():
            return None
        den = float(self.den[rows, idx, m][applies].sum())
        return metric.empty if den == 0 else float(self.num[rows, idx, m][applies].sum()) / den

    def _compute(self, idx: np.ndarray, tau_conf: float, tau_gap: float) -> FrontierPoint:
        rows = np.arange(len(self.episodes))
        n = len(self.episodes)
        known = self.known[rows, idx]
        values = {m.key: self._metric(i, m, rows, idx) for i, m in enumerate(self.protocol.metrics)}
        h = [m.key for m in self.protocol.metrics].index(self.headline.key)
        all_known = bool(known.all())
        settled_value = self._metric(h, self.headline, rows, idx)
        per = {k: float(v[rows, idx].sum()) * PER / n if n else 0.0 for k, v in self.costs.items()}
        return FrontierPoint(
            tau_conf=tau_conf,
            tau_gap=tau_gap,
            n=n,
            value=settled_value if all_known else None,
            ci=None,  # point() and fill_interval() compute it, when asked
            metrics=values if all_known else {k: None for k in values},
            vlm_calls_per_1k=per["vlm_calls"],
            asks_per_1k=per["asks"],
            tokens_per_1k=per["tokens"],
            usd_per_1k=per["usd"],
            asked_fraction=per["asked"] / PER,
            escalated_fraction=per["escalated"] / PER,
            stops=dict(sorted(Counter(self.stop[e][int(j)] for e, j in zip(rows, idx, strict=True)).items())),
            settled=int(known.sum()),
            settled_value=settled_value,
        )

    def _interval(self, m: int, rows: np.ndarray, idx: np.ndarray) -> tuple[float, float] | None:
        applies = self.applies[rows, idx, m]
        if self.bootstrap <= 0 or not self.headline.interval or not applies.any():
            return None
        num, den = self.num[rows, idx, m][applies], self.den[rows, idx, m][applies]
        images = list(self.images[applies])
        return cluster_ratio_ci(num, den, images, B=self.bootstrap, seed=self.seed, empty=self.headline.empty)


def _relabelled(point: FrontierPoint, tau_conf: float, tau_gap: float) -> FrontierPoint:
    return replace(point, tau_conf=tau_conf, tau_gap=tau_gap, pareto=False, same_as=[])
