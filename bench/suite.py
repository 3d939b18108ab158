"""``refseg bench suite``: the original project's whole table as resumable sub-runs.

Sub-runs (each a run folder ``DIR/<name>/``, resumable like ``bench run``):

- ``main``: ``oneshot``; ``loop_iter1``, ``loop_iter2``, ``loop_iter3`` (the loop refines with
  the VLM when one is configured, else with the rules refiner; the report says which); with
  the VLM also ``ground`` (when unsure, the VLM gives the object's box and the proposer's
  prompt tool draws it).
- ``ablation``: ``loop_novlm``: the loop with the rules refiner (no VLM), at the largest
  max_iter. Without a VLM it equals ``loop_iter3``; the report says so.
- ``reliability``: ``oneshot`` and ``loop_iter3`` on clean images plus ``*_noise10``,
  ``*_noise20``, ``*_blur5``, ``*_blur9``.
- ``sam3`` (added by ``--toolset sam3``; the other experiments then run on SAM 1, the ``models``
  toolset): the field's recipes on SAM 3: ``sam3_alone`` (SAM 3's top instance for the
  expression), ``sam3_loop_iterN`` (the loop, re-querying SAM 3 with each rewrite), and with the
  VLM ``sam3_ground`` and ``sam3_agent`` (the VLM drives SAM 3: SAM 3 Agent's recipe).

Size buckets, bootstrap CIs and the cost table come from these runs. All sub-runs share one
tool registry (models load once) and the disk cache (an image is proposed once for the
whole suite; once more per perturbation), so what a sub-run *spent* depends on the order they
ran in: the report compares their *cold* cost (what each costs from an empty cache). It also
compares every run with the one-shot run of the same perturbation, example by example
(bootstrap over images), and draws case galleries of one-shot against the best loop run
(``DIR/cases/``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from bench.data.examples import ExampleSet, ExampleSource
from bench.engines.choose import open_engine
from bench.options import EXPERIMENTS, TOOLSETS, EpisodeOptions, SuiteOptions
from bench.perturb import PERTURBATIONS
from bench.report.cases import CATEGORIES, totals_line, write_cases
from bench.report.markdown import paired_against, write_report
from bench.report.paired import DEFAULT_TOLERANCE
from bench.report.run_reader import RunView
from bench.runner import run_examples
from bench.runtime import Runtime, build_runtime
from bench.samples import IOUS, write_json
from bench.summary import fallback_problem
from tools.errors import ConfigError, InputError
from tools.registry import ToolRegistry


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


SAM3_EXPERIMENT = "sam3"


def plan_suite(
    experiments: Sequence[str], max_iters: Sequence[int], perturbations: Sequence[str], refiner: str
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
    if SAM3_EXPERIMENT in experiments:
        for name, controller, k in [("sam3_alone", "oneshot", 0), (f"sam3_loop_iter{top}", "loop", top)] + (
            [("sam3_ground", "ground", 1), ("sam3_agent", "agent", top)] if refiner == "vlm" else []
        ):
            add(SubRun(name, SAM3_EXPERIMENT, controller, k, refiner, toolset="sam3"))
    return list(plan.values())


def _shared(registry: ToolRegistry, name: str) -> Any:
    def factory(_settings: Any) -> Any:
        return registry.get(name)

    return factory


def variant(base: Runtime, sub: SubRun, cache: dict[str, Runtime]) -> Runtime:
    """The runtime of one sub-run: the base tools (of its toolset), another controller /
    max_iter / refiner."""
    key = f"{sub.toolset}:{sub.refiner}"
    if key not in cache:
        if base.settings.options.get("refine_query", {}).get("refiner") == sub.refiner:
            cache[key] = base
        else:
            refine = {**base.settings.options.get("refine_query", {}), "refiner": sub.refiner}
            options = {**base.settings.options, "refine_query": refine}
            settings = dataclasses.replace(
                base.settings, options=options, vlm=base.vlm if sub.refiner == "vlm" else None
            )
            registry = ToolRegistry(settings)
            for name in (base.config.proposer, base.config.ranker):
                # Share the loaded models: the refiner is the only tool that differs.
                registry.register(name, _shared(base.registry, name))
            cache[key] = Runtime(
                settings, base.config, registry, base.cache, base.vlm if sub.refiner == "vlm" else None
            )
    rt = cache[key]
    config = dataclasses.replace(rt.config, controller=sub.controller, max_iter=sub.max_iter)
    built_from = None if base.options is None else sub_options(base.options, sub)
    return dataclasses.replace(rt, config=config, options=built_from)


def sub_options(options: EpisodeOptions, sub: SubRun) -> EpisodeOptions:
    """The options that build a sub-run's runtime on its own (what a Ray worker builds)."""
    return dataclasses.replace(
        options,
        models=dataclasses.replace(options.models, refiner=sub.refiner),  # type: ignore[arg-type]
        episode=dataclasses.replace(options.episode, controller=sub.controller, max_iter=sub.max_iter),
    )


@dataclass
class SuiteResult:
    """What a suite invocation did: the runs' views, failures, missing examples, the report."""

    out_dir: Path
    runs: list[RunView]
    failed: int
    missing: int
    wall_s: float
    report: Path
    refiner_note: str = ""
    pairs: list[tuple[str, str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    fallback_problems: list[str] = dataclasses.field(default_factory=list)
    world_note: str = ""


OFFLINE_GAIN_NOTE = (
    "offline toolset: the loop's gain over one-shot is built into this world: attribute_rank knows "
    "no synonyms (a 'jade star' is a star of no colour it knows) and the rules refiner rewrites "
    "them to its words ('the green star'); the gain shows that the loop and the harness work, not "
    "what a model-based loop gains"
)


def _weights(rt: Runtime) -> str:
    """The weights the run's tools use (``none`` when no tool has weights: the offline toolset)."""
    read = rt.settings_read
    has_weights = read is None or "weights" in read
    return rt.settings.weights if has_weights else "none (no tool of this run has weights)"


def world_note(rt: Runtime) -> str:
    """What a table of this toolset can and cannot say (the offline ranker's blind spot)."""
    return OFFLINE_GAIN_NOTE if rt.config.ranker == TOOLSETS["offline"][1] else ""


def choose_refiner(options: EpisodeOptions) -> tuple[str, str]:
    """The loop's refiner and a sentence for the report: vlm when configured, else rules."""
    given = options.models.refiner or options.models.tool_options.get("refine_query", {}).get("refiner")
    if given is not None:
        return str(given), f"refiner: {given} (chosen with --refiner)"
    from agent.vlm import VLMConfig

    config = VLMConfig.from_env(base_url=options.vlm.base_url, model=options.vlm.model)
    reason = config.vlm_unavailable_reason()
    if reason is None:
        return "vlm", f"refiner: vlm ({config.model} at {config.base_url})"
    return "rules", f"refiner: rules, no VLM configured ({reason})"


def toolset_options(options: EpisodeOptions, toolset: str) -> EpisodeOptions:
    """The episode options of one side of the suite: ``sam3`` (SAM 3's tools; --proposer and
    --ranker apply when --toolset sam3 chose them), or ``base`` (the suite's toolset, SAM 1's
    ``models`` when --toolset sam3; SAM 3's options dropped)."""
    models = options.models
    chosen = models.toolset == "sam3"
    if toolset == "sam3":
        if chosen:
            return options
        models = dataclasses.replace(models, toolset="sam3", proposer=None, ranker=None)
        return dataclasses.replace(options, models=models)
    tool_options = {k: v for k, v in models.tool_options.items() if k != "sam3_propose"}
    models = dataclasses.replace(models, tool_options=tool_options)
    if chosen:
        models = dataclasses.replace(models, toolset="models", proposer=None, ranker=None)
    return dataclasses.replace(options, models=models)


def base_options(options: SuiteOptions, refiner: str) -> EpisodeOptions:
    """The episode options the suite's shared tools are built with (the loop at its deepest)."""
    episode = options.episode
    models = episode.models
    if episode.refiner != refiner:  # the suite's own choice (a VLM is configured, or not)
        models = dataclasses.replace(models, refiner=refiner)  # type: ignore[arg-type]
    return dataclasses.replace(
        episode,
        models=models,
        episode=dataclasses.replace(episode.episode, controller="loop", max_iter=max(options.max_iters)),
    )


async def run_suite(options: SuiteOptions, *, echo: Callable[[str], None] | None = None) -> SuiteResult:
    """Run (or resume) every sub-run, then write ``report.md``, ``summary.json`` and figures.

    Args:
        options: the suite's data, tools, experiments and run options.
        echo: called with a progress line before each sub-run (``None``: silent).
    """
    refiner, note = choose_refiner(options.episode)
    experiments = options.experiments
    if options.episode.models.toolset == "sam3" and SAM3_EXPERIMENT not in experiments:
        experiments = (*experiments, SAM3_EXPERIMENT)  # SAM 3's rows beside SAM 1's
    plan = plan_suite(experiments, options.max_iters, options.perturbations, refiner)
    # Held once for every sub-run (references into the data set; images are read as they run),
    # instead of each sub-run reading (or generating) the data set again.
    examples = ExampleSet.of(options.data.open())
    bases: dict[str, Runtime] = {}
    try:
        for toolset in dict.fromkeys(s.toolset for s in plan):
            episode = base_options(options, refiner).for_data(examples.protocol.empty_targets)
            bases[toolset] = build_runtime(toolset_options(episode, toolset))
        return await _run_plan(bases, examples, options, plan, note, echo)
    finally:
        for base in bases.values():
            base.close()


def run_suite_sync(options: SuiteOptions, *, echo: Callable[[str], None] | None = None) -> SuiteResult:
    """:func:`run_suite` from synchronous code."""
    return anyio.run(lambda: run_suite(options, echo=echo))


async def _run_plan(
    bases: dict[str, Runtime],
    examples: ExampleSource,
    options: SuiteOptions,
    plan: Sequence[SubRun],
    refiner_note: str,
    echo: Callable[[str], None] | None,
) -> SuiteResult:
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runtimes: dict[str, Runtime] = {}
    views: list[RunView] = []
    engine = open_engine(options.run.engine)  # one Ray cluster and worker pool for every sub-run
    try:
        for i, sub in enumerate(plan, 1):
            if echo is not None:
                echo(f"[{i}/{len(plan)}] {sub.name}")
            rt = variant(bases[sub.toolset], sub, runtimes)
            spec = dataclasses.replace(options.data, perturb=sub.perturb)
            result = await run_examples(rt, examples, out / sub.name, spec, options.run, engine=engine)
            views.append(RunView(sub.name, out / sub.name, result.summary, np.load(out / sub.name / IOUS)))
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
    wall = time.perf_counter() - start
    notes = _notes(bases, options, plan, refiner_note, wall)
    pairs = _pairs(views, plan, options.run.bootstrap)
    report = write_report(
        out, views, title="refseg bench suite", notes=notes, pairs=pairs, extra=_galleries(out, views)
    )
    problems = [
        f"{v.name}: {p}" for v in views if (p := fallback_problem(v.summary, options.run.max_fallback_rate))
    ]
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
        sum(v.summary.counts.failed for v in views),
        sum(v.summary.counts.missing for v in views),
        wall,
        report,
        refiner_note,
        pairs,
        problems,
        " ".join(dict.fromkeys(note for b in bases.values() if (note := world_note(b)))),
    )


def _pairs(
    views: Sequence[RunView], plan: Sequence[SubRun], boot: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every run against the one-shot run of the same perturbation (paired, by images)."""
    by_name = {v.name: v for v in views}
    pairs = []
    for sub in plan:
        base = next((s for s in plan if s.controller == "oneshot" and s.perturb == sub.perturb), None)
        if base is not None and base is not sub and base.name in by_name:
            pairs += paired_against([by_name[sub.name]], by_name[base.name], B=boot)
    return pairs


def _galleries(out: Path, views: Sequence[RunView]) -> list[str]:
    """Case galleries of one-shot against the best clean loop run (by the headline metric);
    the report's section."""
    oneshot = next((v for v in views if v.name == "oneshot"), None)

    def headline(v: RunView) -> float | None:
        return v.summary.metrics.value(v.summary.metrics.headline)

    loops = [
        v
        for v in views
        if v.label.controller == "loop" and v.label.perturb == "clean" and headline(v) is not None
    ]
    if oneshot is None or not loops:
        return []
    best = max(loops, key=lambda v: headline(v) or 0.0)
    try:
        cases = write_cases(oneshot.run_dir, best.run_dir, out / "cases")
    except InputError as exc:  # nothing to show (e.g. no finished example): say so
        return ["## Case galleries", "", f"none: {exc}", ""]
    lines = ["## Case galleries (one-shot vs the best loop run)", ""]
    lines += [f"{best.name} vs oneshot: {totals_line(cases['totals'], cases, DEFAULT_TOLERANCE)}.", ""]
    for category in CATEGORIES:
        if (out / "cases" / f"{category}.png").exists():
            lines += [f"![{category}](cases/{category}.png)", ""]
    return lines


def _notes(
    bases: dict[str, Runtime], options: SuiteOptions, plan: Sequence[SubRun], refiner_note: str, wall: float
) -> list[str]:
    data = options.data
    notes = [refiner_note] if refiner_note else []
    notes += [note for note in dict.fromkeys(world_note(b) for b in bases.values()) if note]
    notes += list(dict.fromkeys(n for base in bases.values() for n in base.notes))
    notes.append(
        "the runs share one disk cache, so what a run spent depends on the order they ran in; "
        "compare their cold cost (what each costs from an empty cache)"
    )
    tools = "; ".join(
        f"{'sam3_* runs' if name == 'sam3' else 'runs'}: proposer {b.config.proposer}, "
        f"ranker {b.config.ranker}"
        for name, b in bases.items()
    )
    weights = _weights(next(iter(bases.values())))
    notes.append(f"data: {data.dataset} (n={data.n}, per_image={data.per_image}); {tools}; weights {weights}")
    if any(s.name == "loop_novlm" for s in plan) and all(s.refiner == "rules" for s in plan):
        notes.append(
            "no VLM configured: the loop already uses the rules refiner, so loop_novlm "
            f"equals loop_iter{max(s.max_iter for s in plan)}"
        )
    notes.append(f"suite wall time {wall:.1f} s (this invocation)")
    return notes
