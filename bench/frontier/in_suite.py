"""The suite's guard sections: the frontier of its always-ask runs, the guard's calibration, and
``--pick-thresholds`` (chosen on some images, scored on the others)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.episode import EpisodeConfig
from bench.frontier.calibration import calibrations
from bench.frontier.frontier import Frontier, Mark, Measured, compute_frontier
from bench.frontier.options import PickOptions
from bench.frontier.pick import PickResult, pick_thresholds, split_source
from bench.frontier.points import FrontierPoint
from bench.frontier.report import guard_markdown, measured_point, write_guard_files
from bench.frontier.source import FrontierSource, read_source
from bench.frontier.tables import point_headers, point_row
from bench.report.run_reader import RunView
from bench.report.tables import md_table
from bench.samples import write_json
from bench.suite_options import SuiteOptions

PICK_JSON = "pick.json"
ALWAYS_ASK = (1.0, 1.0)  # thresholds at which the guard never stops an episode
# The suite's run of each always-ask run's controller at the suite's thresholds (drawn beside).
BESIDE = {"loop_ask": "loop_iter{top}", "ground_ask": "ground"}


AskPlan = tuple[str, str, int, tuple[float, float], str | None]


def always_ask_runs(top: int, refiner: str, pick_split: str | None) -> list[AskPlan]:
    """The frontier experiment's sub-runs: ``(name, controller, max_iter, thresholds, split)``:
    ``loop_ask`` (and with the VLM ``ground_ask``), and with ``--pick-split`` the same on that
    split (``*_pick``)."""
    asks = [("loop_ask", "loop", top)] + ([("ground_ask", "ground", 1)] if refiner == "vlm" else [])
    out: list[AskPlan] = [(name, controller, k, ALWAYS_ASK, None) for name, controller, k in asks]
    if pick_split is not None:
        out += [(f"{name}_pick", controller, k, ALWAYS_ASK, pick_split) for name, controller, k in asks]
    return out


def with_tau(config: EpisodeConfig, tau: tuple[float, float] | None) -> EpisodeConfig:
    """``config`` at the thresholds ``tau`` (``None``: as it is)."""
    return config if tau is None else dataclasses.replace(config, tau_conf=tau[0], tau_gap=tau[1])


def suite_guard_sections(
    out: Path,
    views: Sequence[RunView],
    plan: Sequence[tuple[str, str, tuple[float, float] | None, str | None]],
    options: SuiteOptions,
) -> list[str]:
    """The suite report's guard sections, from its sub-runs ``(name, controller, thresholds,
    split)``: the frontier of each always-ask run beside the suite's run of its controller
    (``BESIDE``), the calibration of every ranker the suite ran, the picked thresholds."""
    by_name = {v.name: v for v in views}
    top = max(options.max_iters)
    asks = []
    for name, _controller, tau, split in plan:
        if tau == ALWAYS_ASK and split is None and name in by_name:
            other = by_name.get(BESIDE.get(name, "").format(top=top))
            measured = None if other is None else (other.name, other.run_dir, _headline(other))
            pick = out / f"{name}_pick" if options.pick.enabled and options.pick.split else None
            asks.append(AskRun(name, out / name, measured, pick))
    if not asks:
        return []
    ep = options.episode.episode
    rankers = {by_name[a.name].label.ranker for a in asks}
    others = _one_run_per_ranker([v for v in views if v.label.ranker not in rankers])
    return suite_guard_report(
        out,
        asks,
        mark=Mark("the suite's thresholds", ep.tau_conf, ep.tau_gap),
        pick=options.pick,
        bootstrap=options.run.bootstrap,
        calibration_runs=[(v.name, v.run_dir) for v in others],
    )


def _headline(view: RunView) -> float | None:
    return view.summary.metrics.value(view.summary.metrics.headline)


def _one_run_per_ranker(views: Sequence[RunView]) -> list[RunView]:
    """For each other ranker (SAM 3's when the suite runs it), its clean run that ranked most
    often (the deepest loop): its guard decisions are the calibration's."""
    best: dict[str | None, RunView] = {}
    for v in views:
        if v.label.perturb != "clean":
            continue
        held = best.get(v.label.ranker)
        if held is None or (v.label.max_iter or 0) > (held.label.max_iter or 0):
            best[v.label.ranker] = v
    return list(best.values())


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
