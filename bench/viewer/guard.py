"""The run page's guard section: where the run sits on its cost-quality frontier, and how well
its ranker's confidence is calibrated.

The frontier is replayed (:mod:`bench.frontier`) from a run at thresholds 1/1 of the same
configuration: the run itself when it was made so, else a folder beside it whose
``config.json`` differs from the run's in the thresholds only (the suite's ``loop_ask`` beside
its ``loop_iter3``). The run's own thresholds are marked on it, and its own measured cost and
metric beside them. Computed once per version of the files (cached), in a worker thread.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.frontier.calibration import Calibration, calibrations
from bench.frontier.figures import calibration_figure, frontier_figure
from bench.frontier.frontier import Frontier, Mark, compute_frontier
from bench.frontier.options import DEFAULT_MARK
from bench.frontier.report import default_mark, measured_point
from bench.frontier.source import REPLAYABLE, FrontierError, read_source
from bench.frontier.tables import calibration_table, frontier_table
from bench.records import RunConfig
from bench.samples import CONFIG, SAMPLES, read_config
from bench.viewer.jsonl import FileState
from bench.viewer.runs import RunFolder
from tools.errors import RefsegError

_THRESHOLDS = ("tau_conf", "tau_gap")


def _without_thresholds(config: RunConfig) -> dict[str, Any]:
    results = config.results.model_dump(mode="json")
    results["episode"] = {k: v for k, v in results.get("episode", {}).items() if k not in _THRESHOLDS}
    return results


def _asks_always(config: RunConfig) -> bool:
    ep = config.results.episode
    return ep.get("tau_conf") == 1.0 and ep.get("tau_gap") == 1.0


def frontier_source_dir(run_dir: Path, config: RunConfig | None) -> Path | None:
    """The run at 1/1 whose replay holds this run: itself, or a sibling folder of the same
    configuration but for the thresholds; ``None`` when there is none."""
    if config is None or config.results.episode.get("controller") not in REPLAYABLE:
        return None
    if _asks_always(config):
        return run_dir
    wanted = _without_thresholds(config)
    try:
        siblings = sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p != run_dir)
    except OSError:
        return None
    for sibling in siblings:
        if not (sibling / CONFIG).exists() or not (sibling / SAMPLES).exists():
            continue
        try:
            other = read_config(sibling)
        except RefsegError:
            continue
        if other is not None and _asks_always(other) and _without_thresholds(other) == wanted:
            return sibling
    return None


@dataclass
class GuardView:
    """What the run page shows (see the module docstring)."""

    frontier: Frontier | None = None
    calibrations: list[Calibration] = field(default_factory=list)
    source: str | None = None
    reason: str | None = None
    _pngs: dict[str, bytes] = field(default_factory=dict, repr=False)

    def context(self) -> dict[str, Any]:
        """The template's view of it."""
        out: dict[str, Any] = {"source": self.source, "reason": self.reason}
        if self.frontier is not None:
            headers, rows = frontier_table(self.frontier)
            out["frontier"] = {"headers": headers, "rows": rows, "cost": self.frontier.cost_label}
            out["notes"] = self.frontier.notes
        if self.calibrations:
            headers, rows = calibration_table(self.calibrations)
            out["calibration"] = {"headers": headers, "rows": rows}
        return out

    def png(self, which: str) -> bytes | None:
        """``frontier`` or ``calibration`` as PNG bytes (drawn once)."""
        if which not in self._pngs:
            if which == "frontier" and self.frontier is not None:
                fig = frontier_figure([self.frontier])
            elif which == "calibration" and self.calibrations:
                fig = calibration_figure(self.calibrations)
            else:
                return None
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png")
            self._pngs[which] = buf.getvalue()
        return self._pngs[which]


def guard_view(run_dir: Path, name: str, headline: float | None) -> GuardView:
    """Compute the run's guard section (frontier intervals only on its front: it is a page)."""
    view = GuardView()
    try:
        run = read_source(run_dir, name)
    except RefsegError as exc:
        return GuardView(reason=str(exc))
    view.calibrations = calibrations([(run.name, run.ranker, run.records)])
    source_dir = frontier_source_dir(run_dir, run.config)
    if source_dir is None:
        view.reason = (
            f"no frontier: a {run.controller} run at 1/1 of this configuration replays every threshold "
            "(`refseg bench run ... --tau-conf 1 --tau-gap 1` into a folder beside this one; the suite "
            "makes loop_ask)"
            if run.controller in REPLAYABLE
            else f"no frontier: {run.controller} runs have no guard replay"
        )
        return view
    try:
        src = run if source_dir == run_dir else read_source(source_dir)
        tc, tg = run.thresholds
        marks = [Mark("this run", tc, tg)] if source_dir != run_dir else [default_mark()]
        if source_dir == run_dir and (tc, tg) != DEFAULT_MARK:
            marks = [default_mark(), Mark("this run", tc, tg)]
        measured = measured_point(run_dir, "this run", headline) if source_dir != run_dir else None
        view.frontier = compute_frontier(
            src, bootstrap=500, marks=marks, measured=[measured] if measured else [], intervals="front"
        )
        view.source = src.name
    except (FrontierError, RefsegError) as exc:
        view.reason = str(exc)
    return view


class GuardViews:
    """:func:`guard_view` per run, cached by the state of the files it reads, computed in one
    background thread (the run page never waits for it; the figures' requests do)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refseg-view-guard")
        self._lock = threading.Lock()
        self._jobs: dict[Path, tuple[Any, Future[GuardView]]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def get(self, run: RunFolder, headline: float | None, *, wait: bool) -> GuardView | None:
        """The run's guard section, or ``None`` while it is computed (``wait``: block for it).

        A run whose records all predate version 2 (no scored ranking steps) gets a reason at
        once, without reading its ranking steps.
        """
        if run.samples.records and all(r.schema_version < 2 for r in run.samples.records.values()):
            return GuardView(reason=OLD_RECORDS)
        source = frontier_source_dir(run.path, _config_or_none(run.path))
        state = (FileState.of(run.path / SAMPLES), FileState.of(source / SAMPLES) if source else None)
        with self._lock:
            job = self._jobs.get(run.path)
            if job is None or job[0] != state:
                job = (state, self._pool.submit(guard_view, run.path, run.name, headline))
                self._jobs[run.path] = job
        future = job[1]
        if wait or future.done():
            return future.result()
        return None


OLD_RECORDS = (
    "no frontier or calibration: this run's records were written before ranking steps carried "
    "conf, gap and candidate scores (samples schema version 2)"
)


def _config_or_none(run_dir: Path) -> RunConfig | None:
    try:
        return read_config(run_dir)
    except RefsegError:
        return None
