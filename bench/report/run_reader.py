"""A run folder as reports, galleries and the viewer read it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.controllers import method_label
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.records import RunLabel, Summary
from bench.samples import IOUS, SAMPLES, SUMMARY, read_summary, scan_samples
from tools.errors import ConfigError, InputError


@dataclass
class RunView:
    """One run as the report sees it."""

    name: str
    run_dir: Path
    summary: Summary
    ious: np.ndarray
    notes: list[str] = field(default_factory=list)  # unreadable lines of samples.jsonl, ...

    @property
    def label(self) -> RunLabel:
        return self.summary.label

    @property
    def method(self) -> str:
        """``oneshot``, ``loop(rules) x3``, ``agent``, ... (the configuration without the
        perturbation), as the controller's spec labels its runs; ``always asks`` added for a
        run at thresholds 1/1."""
        method = method_label(self.label.model_dump())
        return f"{method} always asks" if self.label.always_asks else method


RANDOM_WEIGHTS_WARNING = "random weights (--weights random): figures for smoke tests and timing only"


def random_weight_runs(runs: Sequence[RunView]) -> list[str]:
    return [r.name for r in runs if r.label.weights == "random"]


def load_run(run_dir: str | Path, name: str | None = None, *, bootstrap: int | None = None) -> RunView:
    """Read a run folder (recomputing ``summary.json`` when absent, older than ``samples.jsonl``
    (an interrupted invocation), or with a new ``bootstrap``)."""
    from bench.run_folder import write_outputs

    path = Path(run_dir)
    if not (path / SAMPLES).exists():
        raise InputError(
            f"{path}: not a run folder (no {SAMPLES}); run `refseg bench run --out {path}` first"
        )
    try:
        summary = read_summary(path)
    except ConfigError:  # damaged: it is derived from the other files, so rebuild it
        summary = None
    stale = summary is not None and (path / SAMPLES).stat().st_mtime_ns > (path / SUMMARY).stat().st_mtime_ns
    if summary is None or stale or bootstrap is not None:
        summary = write_outputs(path, bootstrap=DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap)
    try:
        ious = np.load(path / IOUS, allow_pickle=False) if (path / IOUS).exists() else np.zeros(0)
    except (ValueError, OSError):  # damaged, or a pickle (never loaded): rebuild from samples.jsonl
        summary = write_outputs(path, bootstrap=DEFAULT_BOOTSTRAP if bootstrap is None else bootstrap)
        ious = np.load(path / IOUS, allow_pickle=False)
    return RunView(name or path.name, path, summary, ious, scan_samples(path).notes())


def load_runs(dirs: Sequence[str | Path], *, bootstrap: int | None = None) -> list[RunView]:
    """Several runs; names are the folder names (made unique)."""
    runs, seen = [], set()
    for d in dirs:
        name = Path(d).name or str(d)
        while name in seen:
            name = f"{name}'"
        seen.add(name)
        runs.append(load_run(d, name, bootstrap=bootstrap))
    return runs
