"""The suite's plan: which sub-runs the chosen experiments make (see :mod:`bench.suite`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.frontier.in_suite import always_ask_runs
from bench.perturb import PERTURBATIONS
from bench.suite_options import EXPERIMENTS
from tools.errors import ConfigError


@dataclass(frozen=True)
class SubRun:
    """One run of the suite."""

    name: str
    experiment: str
    controller: str
    max_iter: int
    refiner: str
    perturb: str = "clean"
    toolset: str = "base"  # "base": the suite's toolset (SAM 1 when --toolset sam3); or "sam3"
    tau: tuple[float, float] | None = None  # the guard's thresholds (None: the suite's)
    split: str | None = None  # another split of the data set (None: the suite's)


SAM3_EXPERIMENT = "sam3"


def plan_suite(
    experiments: Sequence[str],
    max_iters: Sequence[int],
    perturbations: Sequence[str],
    refiner: str,
    pick_split: str | None = None,
) -> list[SubRun]:
    """The sub-runs of the chosen experiments, without duplicates, in table order."""
    known = (*EXPERIMENTS, SAM3_EXPERIMENT)
    unknown = [e for e in experiments if e not in known]
    if unknown or not experiments:
        raise ConfigError(
            f"unknown experiment(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    if not max_iters or any(k < 1 for k in max_iters):
        raise ConfigError("--max-iters needs values >= 1, e.g. 1,2,3")
    bad = [p for p in perturbations if p not in PERTURBATIONS or p == "clean"]
    if bad:
        raise ConfigError(
            f"unknown perturbation(s) {', '.join(bad)}; choose from "
            f"{', '.join(p for p in PERTURBATIONS if p != 'clean')}"
        )
    top = max(max_iters)
    plan: dict[str, SubRun] = {}

    def add(run: SubRun) -> None:
        plan.setdefault(run.name, run)

    if "main" in experiments:
        add(SubRun("oneshot", "main", "oneshot", 0, refiner))
        for k in sorted(set(max_iters)):
            add(SubRun(f"loop_iter{k}", "main", "loop", k, refiner))
        if refiner == "vlm":  # grounding needs the VLM that the vlm refiner has
            add(SubRun("ground", "main", "ground", 1, refiner))
    if "ablation" in experiments:
        add(SubRun("loop_novlm", "ablation", "loop", top, "rules"))
    if "reliability" in experiments:
        add(SubRun("oneshot", "reliability", "oneshot", 0, refiner))
        add(SubRun(f"loop_iter{top}", "reliability", "loop", top, refiner))
        for p in perturbations:
            add(SubRun(f"oneshot_{p}", "reliability", "oneshot", 0, refiner, p))
            add(SubRun(f"loop_iter{top}_{p}", "reliability", "loop", top, refiner, p))
    if "frontier" in experiments:
        for name, controller, k, tau, split in always_ask_runs(top, refiner, pick_split):
            add(SubRun(name, "frontier", controller, k, refiner, tau=tau, split=split))
    if SAM3_EXPERIMENT in experiments:
        for name, controller, k in [("sam3_alone", "oneshot", 0), (f"sam3_loop_iter{top}", "loop", top)] + (
            [("sam3_ground", "ground", 1), ("sam3_agent", "agent", top)] if refiner == "vlm" else []
        ):
            add(SubRun(name, SAM3_EXPERIMENT, controller, k, refiner, toolset="sam3"))
    return list(plan.values())
