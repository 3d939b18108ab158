"""``refseg bench frontier`` and the reports' guard sections: figures, tables, ``frontier.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.frontier.calibration import Calibration, calibrations
from bench.frontier.figures import fig_calibration, fig_frontier
from bench.frontier.frontier import Frontier, Mark, Measured, compute_frontier
from bench.frontier.options import DEFAULT_MARK, FrontierOptions
from bench.frontier.points import PER
from bench.frontier.source import FrontierSource, read_source, scored
from bench.frontier.tables import calibration_table, frontier_table
from bench.report.tables import md_table
from bench.samples import read_samples, write_json
from tools.errors import RefsegError

FRONTIER_PNG = "frontier.png"
CALIBRATION_PNG = "calibration.png"
FRONTIER_JSON = "frontier.json"


@dataclass
class FrontierOutput:
    """What ``bench frontier`` (or a report's guard section) computed and wrote."""

    frontiers: list[Frontier]
    calibrations: list[Calibration]
    files: list[Path] = field(default_factory=list)


def default_mark(label: str = "default thresholds", pair: tuple[float, float] = DEFAULT_MARK) -> Mark:
    return Mark(label, *pair)


def measured_point(run_dir: Path, label: str, headline: float | None) -> Measured | None:
    """A run's own cost per 1,000 expressions and its headline metric (``None`` for records
    written before episodes recorded what they spent)."""
    records, _ = read_samples(run_dir)
    spent = [r.spent for r in records.values()]
    if not spent or any(s is None for s in spent):
        return None
    n = len(spent)
    costs = {
        "usd": sum(s.cold_usd for s in spent if s) * PER / n,
        "vlm_calls": sum(s.vlm_calls for s in spent if s) * PER / n,
        "asks": sum(s.asks for s in spent if s) * PER / n,
    }
    return Measured(label, costs, headline)


def frontier_json(frontiers: Sequence[Frontier], cals: Sequence[Calibration]) -> dict[str, Any]:
    """One frontier's JSON at the top level (``bench frontier``), several under ``frontiers``."""
    body: dict[str, Any] = (
        frontiers[0].as_json() if len(frontiers) == 1 else {"frontiers": [f.as_json() for f in frontiers]}
    )
    body["calibration"] = [c.as_json() for c in cals]
    return body


def write_guard_files(
    out_dir: Path,
    frontiers: Sequence[Frontier],
    cals: Sequence[Calibration],
    *,
    json_path: Path | None = None,
    figures: Path | None = None,
) -> list[Path]:
    """``frontier.png``, ``calibration.png`` (in ``figures``, default ``out_dir``) and
    ``frontier.json``; what applies is written, the paths returned."""
    figdir = figures or out_dir
    figdir.mkdir(parents=True, exist_ok=True)
    files = []
    if frontiers:
        files.append(fig_frontier(frontiers, figdir / FRONTIER_PNG))
    if cals:
        files.append(fig_calibration(cals, figdir / CALIBRATION_PNG))
    if frontiers:
        path = json_path or out_dir / FRONTIER_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, frontier_json(frontiers, cals))
        files.append(path)
    return files


def run_frontier(options: FrontierOptions) -> FrontierOutput:
    """``refseg bench frontier RUN``: replay the guard of a run at 1/1 on the grid, write the
    figure, the calibration and the JSON.

    Raises:
        FrontierError: RUN cannot be replayed (the message says how to make one that can).
    """
    src = read_source(options.run_dir)
    mark = default_mark("default thresholds" if options.mark == DEFAULT_MARK else "--mark", options.mark)
    frontier = compute_frontier(src, options.grid, bootstrap=options.bootstrap, marks=[mark])
    cals = calibrations([(src.name, src.ranker, src.records)])
    files = write_guard_files(options.out_dir, [frontier], cals, json_path=options.json_file)
    return FrontierOutput([frontier], cals, files)


def guard_markdown(
    frontiers: Sequence[Frontier], cals: Sequence[Calibration], files: Sequence[Path], base: Path
) -> list[str]:
    """The report's sections: the frontier (table and figure) and the guard's calibration."""
    links = {p.name: p.relative_to(base).as_posix() if p.is_relative_to(base) else str(p) for p in files}
    lines: list[str] = []
    if frontiers:
        lines += ["## Cost-quality frontier (every guard threshold, replayed from the runs at 1/1)", ""]
        for f in frontiers:
            lines += [
                f"{f.name} ({f.controller}, {f.n_expressions} expressions on {f.n_images} images; "
                f"{f.grid.describe()}; cost axis: {f.cost_label}):",
                "",
                md_table(*frontier_table(f)),
                "",
            ]
            lines += [f"- {n}" for n in f.notes]
        if FRONTIER_PNG in links:
            lines += [f"![frontier]({links[FRONTIER_PNG]})", ""]
        if FRONTIER_JSON in links:
            lines += [f"Every grid point: [{FRONTIER_JSON}]({links[FRONTIER_JSON]}).", ""]
    if cals:
        lines += [
            "## Guard calibration (is the top-1 candidate right, IoU >= 0.5, as often as conf says?)",
            "",
            md_table(*calibration_table(cals)),
            "",
        ]
        if CALIBRATION_PNG in links:
            lines += [f"![calibration]({links[CALIBRATION_PNG]})", ""]
    return lines


def always_asking(sources: Sequence[FrontierSource]) -> list[FrontierSource]:
    """The sources the frontier replays: loop, ground and agent runs made at 1/1."""
    return [s for s in sources if s.always_asks and s.controller in ("loop", "ground", "agent")]


def guard_sections(
    out_dir: Path,
    run_dirs: Sequence[tuple[str, Path]],
    *,
    marks: Sequence[Mark] = (),
    measured: Sequence[Measured] = (),
    bootstrap: int = 0,
) -> list[str]:
    """For a report over runs: the calibration of every ranker the runs recorded, and the
    frontier of those made at 1/1; figures into ``out_dir/figures``. Empty when no run
    recorded scored ranking steps (older runs); a run that cannot be read is a note."""
    sources, problems = [], []
    for name, path in run_dirs:
        try:
            sources.append(read_source(path, name))
        except RefsegError as exc:
            problems.append(f"- guard sections leave out {name}: {exc}")
    cals = calibrations([(s.name, s.ranker, s.records) for s in sources])
    frontiers = []
    for src in always_asking(sources):
        if not src.records or not all(scored(r) for r in src.records):
            continue
        try:
            frontiers.append(
                compute_frontier(src, bootstrap=bootstrap, marks=marks or [default_mark()], measured=measured)
            )
        except RefsegError as exc:  # e.g. an agent run without warm start: nothing to replay
            problems.append(f"- no frontier for {src.name}: {exc}")
    files = write_guard_files(out_dir, frontiers, cals, figures=out_dir / "figures")
    lines = guard_markdown(frontiers, cals, files, out_dir)
    return [*lines, *problems, ""] if problems and lines else lines
