"""The suite's guard sections: the frontier of its always-ask runs, the guard's calibration, and
``--pick-thresholds`` (chosen on some images, scored on the others)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.frontier.calibration import calibrations
from bench.frontier.frontier import Frontier, Mark, Measured, compute_frontier
from bench.frontier.options import PickOptions
from bench.frontier.pick import PickResult, pick_thresholds, split_source
from bench.frontier.points import FrontierPoint
from bench.frontier.report import guard_markdown, measured_point, write_guard_files
from bench.frontier.source import FrontierSource, read_source
from bench.frontier.tables import point_headers, point_row
from bench.report.tables import md_table
from bench.samples import write_json

PICK_JSON = "pick.json"


@dataclass(frozen=True)
class AskRun:
    """One of the suite's runs at thresholds 1/1, with what goes beside its frontier.

    Attributes:
        name, run_dir: the run.
        measured: the suite's run of the same controller at the suite's thresholds, and its
            headline metric (drawn as a measured point: it should sit on the replay's mark).
        pick_dir: ``--pick-split``'s always-ask run on the choosing split.
    """

    name: str
    run_dir: Path
    measured: tuple[str, Path, float | None] | None = None
    pick_dir: Path | None = None


def _pick(src: FrontierSource, run: AskRun, options: PickOptions, bootstrap: int) -> PickResult:
    if run.pick_dir is not None:
        choosing = read_source(run.pick_dir)
        return pick_thresholds(
            choosing,
            src,
            options,
            bootstrap=bootstrap,
            chose_on=f"split {options.split} ({len(choosing.records)} expressions, run {run.pick_dir.name})",
            scored_on=f"the suite's own split ({len(src.records)} expressions)",
        )
    choosing, scoring = split_source(src, options.fraction)
    return pick_thresholds(
        choosing,
        scoring,
        options,
        bootstrap=bootstrap,
        chose_on=f"{_images(choosing)}: the held-out fraction {options.fraction:g} of the images, "
        "drawn by a digest of each image id",
        scored_on=f"the other {_images(scoring)}",
    )


def _images(src: FrontierSource, shown: int = 20) -> str:
    """``N images (M expressions): a, b, ...`` (the ids listed in pick.json when many)."""
    ids = sorted({r.image_id for r in src.records})
    listed = ", ".join(ids) if len(ids) <= shown else f"listed in {PICK_JSON}"
    return f"{len(ids)} images ({len(src.records)} expressions: {listed})"


def pick_markdown(results: Sequence[PickResult], frontiers: Sequence[Frontier]) -> list[str]:
    """The report's section on the picked thresholds."""
    lines = ["## Guard thresholds picked on held-out images, scored on the others", ""]
    for res, f in zip(results, frontiers, strict=True):
        lines += [
            f"- {res.source}: rule: {res.rule}",
            f"- chose on: {res.chose_on}",
            f"- scored on: {res.scored_on}",
        ]
        if res.chosen is None:
            lines += ["- no threshold pair satisfies the rule on the choosing images: nothing picked", ""]
            continue
        picked: list[tuple[FrontierPoint | None, str]] = [
            (res.scored, "picked, scored"),
            (res.scored_one_shot, "one-shot, scored"),
            (res.scored_always_ask, "always asks, scored"),
            (res.chosen, "picked, on the choosing images"),
        ]
        rows = [point_row(p, what) for p, what in picked if p is not None]
        lines += ["", md_table(point_headers(f), rows), ""]
    return lines


def suite_guard_report(
    out: Path,
    runs: Sequence[AskRun],
    *,
    mark: Mark,
    pick: PickOptions,
    bootstrap: int,
    calibration_runs: Sequence[tuple[str, Path]] = (),
) -> list[str]:
    """Write ``figures/frontier.png``, ``figures/calibration.png``, ``frontier.json`` (and
    ``pick.json``) into ``out``; return the report's sections."""
    sources = [read_source(r.run_dir, r.name) for r in runs]
    frontiers = []
    for src, run in zip(sources, runs, strict=True):
        measured = [m for m in [_measured(run)] if m is not None]
        frontiers.append(compute_frontier(src, bootstrap=bootstrap, marks=[mark], measured=measured))
    others = [read_source(path, name) for name, path in calibration_runs]
    cals = calibrations([(s.name, s.ranker, s.records) for s in [*sources, *others]])
    files = write_guard_files(out, frontiers, cals, figures=out / "figures")
    lines = guard_markdown(frontiers, cals, files, out)
    if pick.enabled and sources:
        results = [_pick(src, run, pick, bootstrap) for src, run in zip(sources, runs, strict=True)]
        write_json(out / PICK_JSON, {"picks": [r.as_json() for r in results]})
        lines += pick_markdown(results, frontiers)
    return lines


def _measured(run: AskRun) -> Measured | None:
    if run.measured is None:
        return None
    name, path, value = run.measured
    return measured_point(path, name, value)
