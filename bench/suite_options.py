"""Typed options of ``refseg bench suite`` (the CLI builds them once; :func:`bench.suite.run_suite`
takes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.frontier.options import PickOptions
from bench.options import DataSpec, EpisodeOptions, RunOptions

EXPERIMENTS = ("main", "ablation", "reliability", "frontier")
DEFAULT_PERTURBATIONS = ("noise10", "noise20", "blur5", "blur9")


@dataclass(frozen=True)
class SuiteOptions:
    """``refseg bench suite``: the original project's table as resumable sub-runs.

    Attributes:
        experiments: which of main, ablation, reliability, frontier.
        max_iters: loop ``max_iter`` values of the main table.
        perturbations: perturbations of the reliability experiment.
        pick: ``--pick-thresholds``: thresholds chosen on some images, scored on the others.
    """

    out: Path
    episode: EpisodeOptions = field(default_factory=EpisodeOptions)
    data: DataSpec = field(default_factory=DataSpec)
    run: RunOptions = field(default_factory=RunOptions)
    experiments: tuple[str, ...] = EXPERIMENTS
    max_iters: tuple[int, ...] = (1, 2, 3)
    perturbations: tuple[str, ...] = DEFAULT_PERTURBATIONS
    pick: PickOptions = field(default_factory=PickOptions)
