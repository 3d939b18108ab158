"""Typed options of ``refseg bench frontier`` and of the suite's ``--pick-thresholds``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.episode import EpisodeConfig
from bench.frontier.grid import Grid
from bench.metrics import DEFAULT_BOOTSTRAP
from tools.errors import InputError

DEFAULT_MARK = (EpisodeConfig.tau_conf, EpisodeConfig.tau_gap)


@dataclass(frozen=True)
class FrontierOptions:
    """``refseg bench frontier RUN``.

    Attributes:
        run_dir: a run made at ``--tau-conf 1 --tau-gap 1``.
        grid: the threshold pairs evaluated (default: steps of 0.05 on both axes).
        bootstrap: resamples of each point's 95% interval (0: none).
        out: where ``frontier.png``, ``calibration.png`` and ``frontier.json`` go (default:
            the run folder).
        json_path: where the JSON goes instead (default ``OUT/frontier.json``).
        mark: the threshold pair marked on the figure (default: the thresholds a run uses
            when not told, 0.5/0.2).
    """

    run_dir: Path
    grid: Grid = field(default_factory=Grid.step)
    bootstrap: int = DEFAULT_BOOTSTRAP
    out: Path | None = None
    json_path: Path | None = None
    mark: tuple[float, float] = DEFAULT_MARK

    def __post_init__(self) -> None:
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap must be >= 0, got {self.bootstrap}")
        if not all(0.0 <= v <= 1.0 for v in self.mark):
            raise InputError(f"--mark thresholds lie in [0, 1], got {self.mark[0]:g},{self.mark[1]:g}")

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.run_dir

    @property
    def json_file(self) -> Path:
        return self.json_path if self.json_path is not None else self.out_dir / "frontier.json"


@dataclass(frozen=True)
class PickOptions:
    """``bench suite --pick-thresholds``: choose the guard's thresholds on some images, score
    them on the others.

    Attributes:
        enabled: pick at all (``--pick-thresholds``).
        fraction: the fraction of images (chosen by a digest of their id, so the same images
            every time) that choose the thresholds; the rest score them.
        split: choose on this split of the data set instead (the suite then also runs the
            always-ask run on it); the suite's own split scores.
        max_usd_per_1k: the price cap: the best metric among pairs that cost at most this
            many USD per 1,000 expressions (from an empty cache).
        target: the target metric: the cheapest pair whose metric reaches it.
    """

    enabled: bool = False
    fraction: float = 0.5
    split: str | None = None
    max_usd_per_1k: float | None = None
    target: float | None = None

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        if (self.max_usd_per_1k is None) == (self.target is None):
            raise InputError(
                "--pick-thresholds needs one rule: --max-usd-per-1k USD (the best metric at that "
                "price) or --target-metric VALUE (the cheapest pair that reaches it)"
            )
        if not 0.0 < self.fraction < 1.0:
            raise InputError(f"--pick-fraction must be between 0 and 1 (exclusive), got {self.fraction:g}")
        if self.max_usd_per_1k is not None and self.max_usd_per_1k < 0:
            raise InputError(f"--max-usd-per-1k must be >= 0, got {self.max_usd_per_1k:g}")

    @property
    def rule(self) -> str:
        """The rule in words, for the report."""
        if self.max_usd_per_1k is not None:
            return f"the best metric at <= ${self.max_usd_per_1k:g} per 1,000 expressions"
        return f"the cheapest pair whose metric reaches {self.target:g}"
