"""The concurrent, resumable bench runner.

Examples are streamed from the data set (:mod:`bench.data.stream`: one pass for the ids,
one that hands image groups to the engine, never all examples in memory) and grouped by
image: each image is decoded (and perturbed) once, its expressions run concurrently, and
the invoker's de-duplication of identical in-flight calls makes them share one propose
computation. At most ``concurrency`` examples are in flight. An engine
(:mod:`bench.engines`: ``local`` in this process, or ``ray`` on a pool of actors) runs the
episodes; each finished example becomes one line of ``RUN_DIR/samples.jsonl``, written here by
a single writer task whichever engine ran it; running the same ``RUN_DIR`` again skips what
is there.

Run folder::

    config.json        what defines the results (checked on resume)
    samples.jsonl      one JSON line per example (last line per example_id wins)
    invocations.jsonl  one line per invocation: wall time, examples run, propose computations
    summary.json       metrics, counts, costs, timing (rewritten at the end of each invocation)
    ious.npy           per-example IoU in example order (failed examples count 0)
    trace.jsonl        tool-call trace events
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from agent.tracing import Tracer
from bench.data.examples import Example, ExampleSet, ExampleSource
from bench.data.stream import ExampleIndex, index_examples, todo_groups
from bench.engines.base import Engine, EngineJob, EngineStats, first_error
from bench.engines.choose import open_engine
from bench.loop_lag import LagMonitor
from bench.options import BenchOptions, DataSpec, RunOptions
from bench.records import SampleRecord, Summary
from bench.run_folder import (
    append_invocation,
    check_config,
    config_digest,
    result_config,
    start_invocation,
    write_outputs,
)
from bench.runtime import Runtime, build_runtime, run_settings, weights_identity
from bench.samples import TRACE, SampleWriter, WriteHook, scan_samples
from bench.summary import fallback_problem
from tools.errors import VLMError


@dataclass
class BenchResult:
    """What one invocation did; ``summary`` is what ``summary.json`` holds."""

    run_dir: Path
    summary: Summary
    ran: int
    skipped: int
    failed_now: int = 0
    notes: list[str] = field(default_factory=list)
    max_fallback_rate: float = 1.0

    @property
    def failed(self) -> int:
        return self.summary.counts.failed

    @property
    def missing(self) -> int:
        return self.summary.counts.missing

    @property
    def fallback_problem(self) -> str | None:
        """One line when more than ``max_fallback_rate`` of the examples that needed the VLM
        fell back (the numbers would not be a VLM result), else ``None``."""
        return fallback_problem(self.summary, self.max_fallback_rate)

    @property
    def exit_code(self) -> int:
        """5 when too many examples fell back, else 0 when every example is done and none
        failed, else 1."""
        if self.fallback_problem is not None:
            return VLMError.exit_code
        return 0 if self.failed == 0 and self.missing == 0 else 1


async def run_bench(options: BenchOptions, *, before_write: WriteHook | None = None) -> BenchResult:
    """``refseg bench run``: load the examples, build the tools, run (or resume) the run folder.

    Args:
        options: what to run and where.
        before_write: fault-injection hook of the sample writer (the chaos scorecard's).

    Raises:
        ConfigError: bad options, or ``options.out`` holds another configuration or is in use.
        RefsegError: a run-level problem (missing checkpoint, ...) stopped the run; the lines
            already written stay, and running again resumes.
    """
    source = options.data.open()
    rt = build_runtime(options.episode.for_data(source.protocol.empty_targets))
    try:
        result = await run_examples(
            rt, source, options.out, options.data, options.run, before_write=before_write
        )
    finally:
        rt.close()
    from bench.report.markdown import write_run_report

    await anyio.to_thread.run_sync(write_run_report, result.run_dir, result.summary, result.notes)
    return result


def run_bench_sync(options: BenchOptions, *, before_write: WriteHook | None = None) -> BenchResult:
    """:func:`run_bench` from synchronous code."""
    return anyio.run(partial(run_bench, options, before_write=before_write))


async def run_examples(
    rt: Runtime,
    examples: ExampleSource | Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
    *,
    before_write: WriteHook | None = None,
    engine: Engine | None = None,
) -> BenchResult:
    """Run (or resume) ``examples`` with an already built runtime (the suite shares one).

    Args:
        examples: a streaming source (:meth:`bench.options.DataSpec.open`), or examples in
            memory (scored with the mask-IoU protocol unless they are an ``ExampleSet`` that
            says otherwise).
        engine: runs the episodes (the suite shares one; ``None``: the one ``options.engine``
            names, opened and closed for this call).

    Raises:
        ConfigError: ``run_dir`` holds a run with a different configuration, another
            invocation is running in it, or duplicate example ids.
        RefsegError: a run-level problem stopped the run (see :func:`run_bench`).
    """
    opts = options or RunOptions()
    source = as_source(examples)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SampleWriter(out, before_write)  # locks the run folder: one invocation at a time
    own = engine is None
    chosen = open_engine(opts.engine) if engine is None else engine
    try:
        return await _run_locked(rt, source, out, spec, opts, writer, chosen)
    finally:
        writer.close()
        if own:
            with anyio.CancelScope(shield=True):
                await chosen.aclose()


def as_source(examples: ExampleSource | Sequence[Example]) -> ExampleSource:
    """A streaming source as it is; examples in memory as an :class:`ExampleSet` (one already
    is: it keeps its protocol and record)."""
    if isinstance(examples, ExampleSet) or not isinstance(examples, Sequence):
        return examples
    return ExampleSet(examples)


def run_examples_sync(
    rt: Runtime,
    examples: ExampleSource | Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
) -> BenchResult:
    """:func:`run_examples` from synchronous code."""
    return anyio.run(partial(run_examples, rt, examples, run_dir, spec, options))


@dataclass
class _Plan:
    """What this invocation runs: the data set's examples (by id) and those not done yet."""

    index: ExampleIndex
    todo: set[str]
    skipped: int
    notes: list[str]
    digest: str = ""


def _plan(
    rt: Runtime, source: ExampleSource, out: Path, spec: DataSpec, opts: RunOptions, started: float
) -> _Plan:
    index = index_examples(source)  # the first pass: ids, order, digest, what was dropped
    scan = scan_samples(out, repair=True)
    done = scan.records
    notes = scan.notes() + dropped_notes(index.dropped)
    run_info = {
        "created": started,
        "concurrency": opts.concurrency,
        "engine": opts.engine.name,
        **run_settings(rt),  # device, and the speed knobs left out of the resume check
        "vlm_limits": _limits_of(rt),
        "weights": weights_identity(rt),  # weights files' sha256: compared on resume (run_folder)
    }
    results = result_config(rt, spec, source.record(), index)
    digests = [rec.config_digest for rec in done.values()]
    note = check_config(out, results, run_info, recorded=bool(done), digests=digests)
    if note:
        notes.append(note)
    todo = [e for e in index.order if e not in done or (opts.retry_failed and _redo(done[e]))]
    skipped = len(index) - len(todo)
    if opts.limit is not None:
        todo = todo[: max(0, opts.limit)]
    return _Plan(index, set(todo), skipped, notes, config_digest(results))


def dropped_notes(dropped: dict[str, int]) -> list[str]:
    """What the loader could not turn into examples (rows without samples, ...), in words."""
    dropped = {k: v for k, v in dropped.items() if v}
    if not dropped:
        return []
    counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in dropped.items())
    return [f"the data set has {counts}: they hold no example to evaluate (counted in summary.json)"]


def _redo(record: SampleRecord) -> bool:
    """``--retry-failed`` redoes an example that failed, or fell back because the VLM failed."""
    return record.failed or record.stop_reason == "fallback"


def _progress(total: int, initial: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="ex",
        dynamic_ncols=True,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        smoothing=0.1,
    )


async def _write_records(
    engine: Engine, job: EngineJob, writer: SampleWriter, bar: Any
) -> tuple[dict[str, int], EngineStats | None]:
    """Run ``job`` on ``engine``; its records become ``samples.jsonl`` lines here, written by
    one task in the order the examples finish, whichever engine produced them."""
    send, receive = anyio.create_memory_object_stream[SampleRecord](max_buffer_size=job.concurrency * 2)
    counters = {"written": 0, "failed": 0}
    stats: EngineStats | None = None
    monitor = LagMonitor()  # this loop's lag while the episodes run (a Ray worker measures its own)
    job.on_start = monitor.take  # set-up and a cluster's start are not the examples' lag

    async def write_loop() -> None:
        async with receive:
            async for rec in receive:
                await anyio.to_thread.run_sync(writer.write, rec)  # fsync off the event loop
                counters["written"] += 1
                counters["failed"] += int(rec.failed)
                bar.update(1)
                if counters["failed"]:
                    bar.set_postfix(failed=counters["failed"], refresh=False)

    async def produce() -> None:
        nonlocal stats
        try:
            async with send:  # closed when the engine is done: the writer drains and stops
                stats = await engine.run(job, send)
        finally:
            monitor.stop()

    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(monitor.run)
            outer.start_soon(write_loop)
            outer.start_soon(produce)
    except BaseExceptionGroup as group_exc:
        raise first_error(group_exc) from None
    if stats is not None:
        stats.lag.merge(monitor.lag)
    return counters, stats


async def _run_locked(
    rt: Runtime,
    source: ExampleSource,
    out: Path,
    spec: DataSpec,
    opts: RunOptions,
    writer: SampleWriter,
    engine: Engine,
) -> BenchResult:
    started = time.time()
    plan = await anyio.to_thread.run_sync(_plan, rt, source, out, spec, opts, started)
    writer.stamp = {"config_digest": plan.digest}
    run_id = uuid.uuid4().hex[:12]
    start_invocation(out, {"run_id": run_id, "started": started, "examples_todo": len(plan.todo)})
    tracer = Tracer(out / TRACE, run_id=run_id)
    groups = todo_groups(source, plan.index, plan.todo)  # the second pass, streamed to the engine
    job = EngineJob(
        rt, groups, len(plan.todo), spec.perturb, run_id, tracer, opts.concurrency, source.protocol
    )
    bar = _progress(plan.skipped + len(plan.todo), plan.skipped, opts.quiet)
    t0 = time.perf_counter()
    try:
        counters, stats = await _write_records(engine, job, writer, bar)
    finally:
        bar.close()
        tracer.close()
        await rt.aclose_vlm()
        await rt.drain_cache()
    append_invocation(
        out,
        {
            "run_id": run_id,
            "started": started,
            # Set-up (tools built, models loaded, an engine's cluster and workers started) is
            # booked apart, not as the run's wall time.
            "wall_s": round(time.perf_counter() - t0 - (stats.setup_s + stats.start_s if stats else 0.0), 4),
            "examples_run": counters["written"],
            "concurrency": opts.concurrency,
            "skipped": plan.skipped,
            "proposer": rt.config.proposer,
            **(stats or EngineStats(engine.name, workers=0)).invocation_fields(),
            "cache": rt.cache.health() if rt.cache is not None else None,
            "trace_error": tracer.error,
        },
    )
    plan.notes += [problem for problem in (_cache_problem(rt), tracer.error) if problem]
    summary = write_outputs(out, plan.index.order, bootstrap=opts.bootstrap, protocol=source.protocol)
    return BenchResult(
        out,
        summary,
        ran=counters["written"],
        skipped=plan.skipped,
        failed_now=counters["failed"],
        notes=[*plan.notes, *rt.notes],
        max_fallback_rate=opts.max_fallback_rate,
    )


def _limits_of(rt: Runtime) -> dict[str, Any] | None:
    """The VLM endpoint's limits the run was held to (``None``: no VLM, or none given)."""
    limits = getattr(getattr(rt.vlm, "config", None), "limits", None)
    return limits.as_dict() if limits is not None and limits.enabled else None


def _cache_problem(rt: Runtime) -> str | None:
    if rt.cache is None:
        return None
    if rt.cache.degraded is not None:
        return f"{rt.cache.degraded}; {rt.cache.errors} cache read(s)/write(s) failed"
    if rt.cache.corrupt:
        one = rt.cache.corrupt == 1
        return (
            f"{rt.cache.corrupt} tool cache entr{'y' if one else 'ies'} in {rt.cache.directory} "
            f"{'was' if one else 'were'} damaged or did not fit {'its' if one else 'their'} call "
            "(another layout, sizes, non-finite values): dropped and recomputed"
        )
    return None
