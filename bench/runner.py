"""The concurrent, resumable bench runner.

Examples are grouped by image: each image is decoded (and perturbed) once, its expressions
run concurrently, and the invoker's de-duplication of identical in-flight calls makes them
share one propose computation. At most ``concurrency`` examples are in flight (an anyio
``CapacityLimiter``). Each finished example becomes one line of ``RUN_DIR/samples.jsonl``,
written by a single writer task; running the same ``RUN_DIR`` again skips what is there.

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

from agent.session import Session
from agent.tracing import Tracer
from bench.data import Example, group_by_image
from bench.evaluate import evaluate_example, load_example_image
from bench.options import BenchOptions, DataSpec, RunOptions
from bench.run_folder import append_invocation, check_config, result_config, write_outputs
from bench.runtime import Runtime, build_runtime
from bench.samples import TRACE, SampleWriter, WriteHook, read_samples
from bench.summary import fallback_problem
from tools.errors import ConfigError, RefsegError, VLMError
from tools.types import Image


@dataclass
class BenchResult:
    """What one invocation did; ``summary`` is what ``summary.json`` holds."""

    run_dir: Path
    summary: dict[str, Any]
    ran: int
    skipped: int
    failed_now: int = 0
    notes: list[str] = field(default_factory=list)
    max_fallback_rate: float = 1.0

    @property
    def failed(self) -> int:
        return int(self.summary["counts"]["failed"])

    @property
    def missing(self) -> int:
        return int(self.summary["counts"]["missing"])

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
    examples = options.data.load()
    rt = build_runtime(options.episode)
    try:
        result = await run_examples(
            rt, examples, options.out, options.data, options.run, before_write=before_write
        )
    finally:
        rt.close()
    from bench.report import write_run_report

    await anyio.to_thread.run_sync(write_run_report, result.run_dir, result.summary, result.notes)
    return result


def run_bench_sync(options: BenchOptions, *, before_write: WriteHook | None = None) -> BenchResult:
    """:func:`run_bench` from synchronous code."""
    return anyio.run(partial(run_bench, options, before_write=before_write))


async def run_examples(
    rt: Runtime,
    examples: Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
    *,
    before_write: WriteHook | None = None,
) -> BenchResult:
    """Run (or resume) ``examples`` with an already built runtime (the suite shares one).

    Raises:
        ConfigError: ``run_dir`` holds a run with a different configuration, another
            invocation is running in it, or duplicate example ids.
        RefsegError: a run-level problem stopped the run (see :func:`run_bench`).
    """
    opts = options or RunOptions()
    if len({ex.example_id for ex in examples}) != len(examples):
        raise ConfigError("the data set has duplicate example ids; the runner cannot resume it")
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SampleWriter(out, before_write)  # locks the run folder: one invocation at a time
    try:
        return await _run_locked(rt, examples, out, spec, opts, writer)
    finally:
        writer.close()


def run_examples_sync(
    rt: Runtime,
    examples: Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
) -> BenchResult:
    """:func:`run_examples` from synchronous code."""
    return anyio.run(partial(run_examples, rt, examples, run_dir, spec, options))


@dataclass
class _Plan:
    """What this invocation runs: examples not done yet (by example order)."""

    todo: list[tuple[int, Example]]
    skipped: int
    notes: list[str]


def _plan(
    rt: Runtime, examples: Sequence[Example], out: Path, spec: DataSpec, opts: RunOptions, started: float
) -> _Plan:
    done, torn = read_samples(out, repair=True)
    notes = [f"cut off {torn} torn or unreadable line(s) of samples.jsonl; redoing them"] if torn else []
    run_info = {"created": started, "concurrency": opts.concurrency, "device": rt.settings.device}
    if check_config(out, result_config(rt, spec, examples), run_info, recorded=bool(done)):
        notes.append("no example was recorded yet: config.json now holds this configuration")
    todo = [
        (i, ex)
        for i, ex in enumerate(examples)
        if ex.example_id not in done or (opts.retry_failed and _redo(done[ex.example_id]))
    ]
    skipped = len(examples) - len(todo)
    if opts.limit is not None:
        todo = todo[: max(0, opts.limit)]
    return _Plan(todo, skipped, notes)


def _redo(record: dict[str, Any]) -> bool:
    """``--retry-failed`` redoes an example that failed, or fell back because the VLM failed."""
    return bool(record.get("failed")) or record.get("stop_reason") == "fallback"


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


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaf_errors(sub)]
    return [exc]


def _first_error(group_exc: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The error to report for a failed task group: a RefsegError first, else the only one."""
    leaves = _leaf_errors(group_exc)
    first = next((e for e in leaves if isinstance(e, RefsegError)), None)
    if first is not None:
        return first
    return leaves[0] if len(leaves) == 1 else group_exc


async def _run_local(
    session: Session, plan: _Plan, spec: DataSpec, opts: RunOptions, writer: SampleWriter, bar: Any
) -> dict[str, int]:
    """The local engine: images decoded in turn, their examples run concurrently."""
    index_of = {ex.example_id: i for i, ex in plan.todo}
    limiter = anyio.CapacityLimiter(opts.concurrency)
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](max_buffer_size=opts.concurrency * 2)
    counters = {"written": 0, "failed": 0, "images": 0}

    async def write_loop() -> None:
        async with receive:
            async for rec in receive:
                await anyio.to_thread.run_sync(writer.write, rec)  # fsync off the event loop
                counters["written"] += 1
                counters["failed"] += int(rec["failed"])
                bar.update(1)
                if counters["failed"]:
                    bar.set_postfix(failed=counters["failed"], refresh=False)

    async def one(ex: Example, image: Image | str, token: object) -> None:
        try:
            await send.send(await evaluate_example(session, index_of[ex.example_id], ex, image))
        finally:
            limiter.release_on_behalf_of(token)

    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(write_loop)
            async with send, anyio.create_task_group() as tg:
                for _image_id, group in group_by_image([ex for _, ex in plan.todo]):
                    counters["images"] += 1
                    # Decoding runs in a thread while the previous image's examples run.
                    image = await anyio.to_thread.run_sync(load_example_image, group[0], spec.perturb)
                    for ex in group:
                        token = object()
                        await limiter.acquire_on_behalf_of(token)
                        tg.start_soon(one, ex, image, token)
    except BaseExceptionGroup as group_exc:
        raise _first_error(group_exc) from None
    return counters


async def _run_locked(
    rt: Runtime,
    examples: Sequence[Example],
    out: Path,
    spec: DataSpec,
    opts: RunOptions,
    writer: SampleWriter,
) -> BenchResult:
    started = time.time()
    reset_peak_cuda_memory(rt.settings.device)
    plan = _plan(rt, examples, out, spec, opts, started)
    run_id = uuid.uuid4().hex[:12]
    tracer = Tracer(out / TRACE, run_id=run_id)
    session = Session(rt.registry, rt.config, rt.cache, tracer, run_id=run_id)
    bar = _progress(plan.skipped + len(plan.todo), plan.skipped, opts.quiet)
    t0 = time.perf_counter()
    try:
        setup_s = await session.setup() if plan.todo else 0.0  # models load here, not in an episode
        t0 = time.perf_counter()
        counters = await _run_local(session, plan, spec, opts, writer, bar)
    finally:
        bar.close()
        tracer.close()
        aclose = getattr(rt.vlm, "aclose", None)
        if aclose is not None:  # the SDK's connection pool belongs to this event loop
            with anyio.CancelScope(shield=True):
                await aclose()
    append_invocation(
        out,
        {
            "run_id": run_id,
            "started": started,
            "wall_s": round(time.perf_counter() - t0, 4),
            "setup_s": round(setup_s, 4),
            "examples_run": counters["written"],
            "images_run": counters["images"],
            "concurrency": opts.concurrency,
            "skipped": plan.skipped,
            "computed": dict(session.invoker.computed),
            "proposer": rt.config.proposer,
            "peak_cuda_memory_bytes": peak_cuda_memory(rt.settings.device),
        },
    )
    summary = write_outputs(out, examples, bootstrap=opts.bootstrap)
    return BenchResult(
        out,
        summary,
        ran=counters["written"],
        skipped=plan.skipped,
        failed_now=counters["failed"],
        notes=[*plan.notes, *rt.notes],
        max_fallback_rate=opts.max_fallback_rate,
    )


def reset_peak_cuda_memory(device: str) -> None:
    """Start this invocation's peak from zero (a suite runs several in one process)."""
    if device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats(device)
        except Exception:  # no CUDA runtime: nothing to reset
            pass


def peak_cuda_memory(device: str) -> int | None:
    """``torch.cuda.max_memory_allocated(device)`` on a CUDA device, else ``None``."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return int(torch.cuda.max_memory_allocated(device)) if torch.cuda.is_available() else None
    except Exception:  # no CUDA runtime: nothing to report
        return None
