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
- ``frontier``: ``loop_ask`` (the loop at the largest max_iter at thresholds 1/1: it always asks)
  and with the VLM ``ground_ask``; every other threshold pair is replayed from them
  (:mod:`bench.frontier.in_suite`: the frontier, the guard's calibration, ``--pick-thresholds``).
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
from bench.frontier.in_suite import suite_guard_sections, with_tau
from bench.options import TOOLSETS, EpisodeOptions
from bench.report.cases import CATEGORIES, totals_line, write_cases
from bench.report.markdown import paired_against, write_report
from bench.report.paired import DEFAULT_TOLERANCE
from bench.report.run_reader import RunView
from bench.runner import run_examples
from bench.runtime import Runtime, build_runtime
from bench.samples import IOUS, write_json
from bench.suite_options import SuiteOptions
from bench.suite_plan import SAM3_EXPERIMENT, SubRun, plan_suite
from bench.summary import fallback_problem
from tools.errors import InputError
from tools.registry import ToolRegistry


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
    config = with_tau(
        dataclasses.replace(rt.config, controller=sub.controller, max_iter=sub.max_iter), sub.tau
    )
    built_from = None if base.options is None else sub_options(base.options, sub)
    return dataclasses.replace(rt, config=config, options=built_from)


def sub_options(options: EpisodeOptions, sub: SubRun) -> EpisodeOptions:
    """The options that build a sub-run's runtime on its own (what a Ray worker builds)."""
    return dataclasses.replace(
        options,
        models=dataclasses.replace(options.models, refiner=sub.refiner),  # type: ignore[arg-type]
        episode=with_tau(
            dataclasses.replace(options.episode, controller=sub.controller, max_iter=sub.max_iter), sub.tau
        ),
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
    if refiner != "vlm":  # ground, agent and the VLM refiner run only with the vlm refiner
        options.episode.vlm.limits.refuse_unused(f"no sub-run of this suite calls one ({note})")
    experiments = options.experiments
    if options.episode.models.toolset == "sam3" and SAM3_EXPERIMENT not in experiments:
        experiments = (*experiments, SAM3_EXPERIMENT)  # SAM 3's rows beside SAM 1's
    pick_split = options.pick.split if options.pick.enabled else None
    plan = plan_suite(experiments, options.max_iters, options.perturbations, refiner, pick_split)
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
    splits: dict[str | None, ExampleSource] = {None: examples}  # --pick-split: another split, once
    engine = open_engine(options.run.engine)  # one Ray cluster and worker pool for every sub-run
    try:
        for i, sub in enumerate(plan, 1):
            if echo is not None:
                echo(f"[{i}/{len(plan)}] {sub.name}")
            rt = variant(bases[sub.toolset], sub, runtimes)
            spec = dataclasses.replace(
                options.data, perturb=sub.perturb, split=sub.split or options.data.split
            )
            if sub.split not in splits:
                splits[sub.split] = ExampleSet.of(spec.open())
            data = splits[sub.split]
            result = await run_examples(rt, data, out / sub.name, spec, options.run, engine=engine)
            views.append(RunView(sub.name, out / sub.name, result.summary, np.load(out / sub.name / IOUS)))
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
    wall = time.perf_counter() - start
    notes = _notes(bases, options, plan, refiner_note, wall)
    pairs = _pairs(views, plan, options.run.bootstrap)
    asks = [(s.name, s.controller, s.tau, s.split) for s in plan]
    extra = [*_galleries(out, views), *suite_guard_sections(out, views, asks, options)]
    report = write_report(out, views, title="refseg bench suite", notes=notes, pairs=pairs, extra=extra)
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
        same = [s for s in plan if s.perturb == sub.perturb and s.split == sub.split]
        base = next((s for s in same if s.controller == "oneshot"), None)
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
        if v.label.controller == "loop"
        and v.label.perturb == "clean"
        and not v.label.always_asks  # the loop as configured, not the frontier's source
        and headline(v) is not None
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
