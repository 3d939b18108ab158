"""``refseg bench suite``: the original project's whole table as resumable sub-runs.

Sub-runs (each a run folder ``DIR/<name>/``, resumable like ``bench run``):

- ``main``: ``oneshot``; ``loop_iter1``, ``loop_iter2``, ``loop_iter3`` (the loop refines with
  the VLM when one is configured, else with the rules refiner; the report says which).
- ``ablation``: ``loop_novlm``: the loop with the rules refiner (no VLM), at the largest
  max_iter. Without a VLM it equals ``loop_iter3``; the report says so.
- ``reliability``: ``oneshot`` and ``loop_iter3`` on clean images plus ``*_noise10``,
  ``*_noise20``, ``*_blur5``, ``*_blur9``.

Size buckets, bootstrap CIs and the cost table come from these runs. All sub-runs share one
tool registry (models load once) and the disk cache (an image is proposed once for the
whole suite; once more per perturbation).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from bench.bench_cli import data_spec, print_unfinished, run_options
from bench.data import Example
from bench.options import Runtime, build_runtime
from bench.perturb import PERTURBATIONS
from bench.report import RunView, print_table, write_report
from bench.runner import DataSpec, RunOptions, run_bench
from bench.samples import IOUS, write_json
from tools.errors import ConfigError
from tools.registry import ToolRegistry

EXPERIMENTS = ("main", "ablation", "reliability")
DEFAULT_PERTURBATIONS = ("noise10", "noise20", "blur5", "blur9")


def add_suite_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("suite (--controller and --max-iter are set per sub-run)")
    s.add_argument(
        "--experiments",
        default=",".join(EXPERIMENTS),
        help=f"comma-separated subset of {', '.join(EXPERIMENTS)} (default: all)",
    )
    s.add_argument("--max-iters", default="1,2,3", help="loop max_iter values of the main table")
    s.add_argument(
        "--perturbations",
        default=",".join(DEFAULT_PERTURBATIONS),
        help="perturbations of the reliability experiment",
    )


@dataclass(frozen=True)
class SubRun:
    """One run of the suite."""

    name: str
    experiment: str
    controller: str
    max_iter: int
    refiner: str
    perturb: str = "clean"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def plan_suite(
    experiments: Sequence[str], max_iters: Sequence[int], perturbations: Sequence[str], refiner: str
) -> list[SubRun]:
    """The sub-runs of the chosen experiments, without duplicates, in table order."""
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown or not experiments:
        raise ConfigError(
            f"unknown experiment(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(EXPERIMENTS)}"
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
    if "ablation" in experiments:
        add(SubRun("loop_novlm", "ablation", "loop", top, "rules"))
    if "reliability" in experiments:
        add(SubRun("oneshot", "reliability", "oneshot", 0, refiner))
        add(SubRun(f"loop_iter{top}", "reliability", "loop", top, refiner))
        for p in perturbations:
            add(SubRun(f"oneshot_{p}", "reliability", "oneshot", 0, refiner, p))
            add(SubRun(f"loop_iter{top}_{p}", "reliability", "loop", top, refiner, p))
    return list(plan.values())


def _shared(registry: ToolRegistry, name: str) -> Any:
    def factory(_settings: Any) -> Any:
        return registry.get(name)

    return factory


def variant(base: Runtime, sub: SubRun, cache: dict[str, Runtime]) -> Runtime:
    """The runtime of one sub-run: the base tools, another controller / max_iter / refiner."""
    if sub.refiner not in cache:
        if base.settings.options.get("refine_query", {}).get("refiner") == sub.refiner:
            cache[sub.refiner] = base
        else:
            options = {**base.settings.options, "refine_query": {"refiner": sub.refiner}}
            settings = dataclasses.replace(
                base.settings, options=options, vlm=base.vlm if sub.refiner == "vlm" else None
            )
            registry = ToolRegistry(settings)
            for name in (base.config.proposer, base.config.ranker):
                # Share the loaded models: the refiner is the only tool that differs.
                registry.register(name, _shared(base.registry, name))
            cache[sub.refiner] = Runtime(
                settings, base.config, registry, base.cache, base.vlm if sub.refiner == "vlm" else None
            )
    rt = cache[sub.refiner]
    config = dataclasses.replace(rt.config, controller=sub.controller, max_iter=sub.max_iter)
    return dataclasses.replace(rt, config=config)


@dataclass
class SuiteResult:
    out_dir: Path
    runs: list[RunView]
    failed: int
    missing: int
    wall_s: float
    report: Path


async def run_suite(
    base: Runtime,
    examples: Sequence[Example],
    out_dir: str | Path,
    data: DataSpec,
    plan: Sequence[SubRun],
    options: RunOptions | None = None,
    *,
    refiner_note: str = "",
) -> SuiteResult:
    """Run (or resume) every sub-run, then write ``report.md``, ``summary.json`` and figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = options or RunOptions()
    start = time.perf_counter()
    runtimes: dict[str, Runtime] = {}
    views: list[RunView] = []
    for i, sub in enumerate(plan, 1):
        if not opts.quiet:
            print(f"[{i}/{len(plan)}] {sub.name}", file=sys.stderr)
        rt = variant(base, sub, runtimes)
        spec = dataclasses.replace(data, perturb=sub.perturb)
        result = await run_bench(rt, examples, out / sub.name, spec, opts)
        views.append(RunView(sub.name, out / sub.name, result.summary, _ious(out / sub.name)))
    wall = time.perf_counter() - start
    notes = [refiner_note] if refiner_note else []
    notes.append(
        f"data: {data.dataset} (n={data.n}, per_image={data.per_image}); "
        f"proposer {base.config.proposer}, ranker {base.config.ranker}, weights {base.settings.weights}"
    )
    if any(s.name == "loop_novlm" for s in plan) and all(s.refiner == "rules" for s in plan):
        notes.append(
            "no VLM configured: the loop already uses the rules refiner, so loop_novlm "
            f"equals loop_iter{max(s.max_iter for s in plan)}"
        )
    notes.append(f"suite wall time {wall:.1f} s (this invocation)")
    report = write_report(out, views, title="refseg bench suite", notes=notes)
    write_json(
        out / "summary.json",
        {
            "notes": notes,
            "wall_s": round(wall, 3),
            "plan": [dataclasses.asdict(s) for s in plan],
            "runs": {v.name: v.summary for v in views},
        },
    )
    return SuiteResult(
        out,
        views,
        sum(int(v.summary["counts"]["failed"]) for v in views),
        sum(int(v.summary["counts"]["missing"]) for v in views),
        wall,
        report,
    )


def _ious(run_dir: Path) -> Any:
    return np.load(run_dir / IOUS)


def choose_refiner(args: argparse.Namespace) -> tuple[str, str]:
    """The loop's refiner and a sentence for the report: vlm when configured, else rules."""
    if args.refiner is not None:
        return args.refiner, f"refiner: {args.refiner} (chosen with --refiner)"
    from agent.vlm import VLMConfig

    config = VLMConfig.from_env(base_url=args.vlm_base_url, model=args.vlm_model)
    reason = config.vlm_unavailable_reason()
    if reason is None:
        return "vlm", f"refiner: vlm ({config.model} at {config.base_url})"
    return "rules", f"refiner: rules, no VLM configured ({reason})"


def run_suite_from_args(args: argparse.Namespace) -> int:
    """``refseg bench suite`` (see :func:`bench.bench_cli.add_bench_parsers` for options)."""
    try:
        max_iters = [int(v) for v in _csv(args.max_iters)]
    except ValueError:
        raise ConfigError(f"--max-iters must be comma-separated integers, got {args.max_iters!r}") from None
    refiner, note = choose_refiner(args)
    plan = plan_suite(_csv(args.experiments), max_iters, _csv(args.perturbations), refiner)
    args = argparse.Namespace(
        **{**vars(args), "refiner": refiner, "controller": "loop", "max_iter": max(max_iters)}
    )
    data = data_spec(args)
    examples = data.load()
    rt = build_runtime(args)
    try:
        result = anyio.run(
            partial(run_suite, rt, examples, args.out, data, plan, run_options(args), refiner_note=note)
        )
    finally:
        rt.close()
    print(note)
    print_table(result.runs)
    print(f"suite: {len(result.runs)} runs in {result.wall_s:.1f} s; report {result.report}")
    print_unfinished(
        result.missing,
        result.failed,
        "across the runs, counted as IoU 0 (see each run's summary.json; --retry-failed redoes them)",
    )
    # Per-example failures (e.g. no proposals in a heavily perturbed image) are results of
    # the system under test: they are in the table; only an unfinished suite exits 1.
    return 0 if result.missing == 0 else 1
