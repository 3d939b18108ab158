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

import hashlib
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from agent.session import Session
from agent.tracing import Tracer
from bench.data import Example, group_by_image, load_dataset_spec
from bench.metrics import intersection_union, size_bucket
from bench.options import Runtime, describe_config
from bench.perturb import PERTURBATIONS, perturb_image
from bench.rle import encode_rle
from bench.samples import (
    CONFIG,
    INVOCATIONS,
    IOUS,
    SUMMARY,
    TRACE,
    SampleWriter,
    config_differences,
    read_json,
    read_samples,
    write_json,
)
from bench.summary import build_summary, trace_faults
from tools.errors import ConfigError, RefsegError
from tools.types import Image


@dataclass(frozen=True)
class DataSpec:
    """What selects (and alters) the examples; part of the result-defining configuration."""

    dataset: str
    split: str = "validation"
    n: int | None = None
    per_image: str = "all"
    seed_subset: int | None = None
    perturb: str = "clean"

    def load(self) -> list[Example]:
        """The examples it selects (the perturbation applies later, per decoded image)."""
        return load_dataset_spec(self.dataset, self.n, self.per_image, self.seed_subset, split=self.split)


@dataclass(frozen=True)
class RunOptions:
    """How a run goes; none of these change per-example results.

    Attributes:
        concurrency: examples in flight at once.
        retry_failed: redo examples whose last record failed.
        bootstrap: resamples for the confidence intervals (0 = none).
        quiet: no progress bar.
        limit: run at most this many new examples in this invocation (then stop; resumable).
    """

    concurrency: int = 4
    retry_failed: bool = False
    bootstrap: int = 2000
    quiet: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ConfigError("--limit must be 0 or more (the number of new examples to run now)")
        if self.bootstrap < 0:
            raise ConfigError("--bootstrap must be 0 (off) or a number of resamples")


@dataclass
class BenchResult:
    """What one invocation did; ``summary`` is what ``summary.json`` holds."""

    run_dir: Path
    summary: dict[str, Any]
    ran: int
    skipped: int
    failed_now: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return int(self.summary["counts"]["failed"])

    @property
    def missing(self) -> int:
        return int(self.summary["counts"]["missing"])

    @property
    def exit_code(self) -> int:
        """0 when every example is done and none failed, else 1."""
        return 0 if self.failed == 0 and self.missing == 0 else 1


def examples_digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.example_id}\x00{ex.sentence}\x01".encode())
    return h.hexdigest()[:16]


def result_config(rt: Runtime, spec: DataSpec, examples: Sequence[Example]) -> dict[str, Any]:
    """The settings that change results: compared on resume (device, paths and timeouts excluded)."""
    described = describe_config(rt)
    settings = {k: v for k, v in described["settings"].items() if k not in ("device", "checkpoint_dir")}
    return json.loads(
        json.dumps(
            {
                "episode": described["episode"],
                "settings": settings,
                "vlm": described["vlm"],
                "data": asdict(spec),
                "examples": {"count": len(examples), "digest": examples_digest(examples)},
            },
            default=str,
        )
    )


def check_config(
    run_dir: Path, results: dict[str, Any], run_info: dict[str, Any], *, recorded: bool = True
) -> bool:
    """Write ``config.json`` on the first run; on resume, refuse a different configuration.

    Args:
        recorded: the run folder holds at least one example's record. Without one (e.g. the
            first invocation stopped on a missing checkpoint) a new configuration replaces
            the old one: there is no result it could contradict.

    Returns:
        True when a different configuration was replaced.
    """
    path = run_dir / CONFIG
    old = read_json(path)
    if old is not None and "results" in old:
        diffs = config_differences(old["results"], results)
        if diffs and not recorded:
            write_json(path, {"results": results, "run": run_info})
            return True
        if diffs:
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration ("
                + "; ".join(diffs[:6])
                + ("; ..." if len(diffs) > 6 else "")
                + "); resume it with the same options or pick a new --out"
            )
        return False
    write_json(path, {"results": results, "run": run_info})
    return False


def _load_image(ex: Example, perturbation: str) -> Image | str:
    """The (perturbed) image, or the error text that fails all its examples."""
    try:
        image = ex.load_image()
        return perturb_image(image, perturbation)
    except RefsegError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        return f"{type(exc).__name__}: {exc}"


def _base_record(index: int, ex: Example) -> dict[str, Any]:
    return {
        "index": index,
        "example_id": ex.example_id,
        "image_id": ex.image_id,
        "sentence": ex.sentence,
        "category": ex.category,
        "failed": True,
        "error": None,
        "iou": 0.0,
        "inter": 0,
        "union": 0,
        "gt_area": 0,
        "bucket": None,
        "mask": None,
        "iterations": 0,
        "stop_reason": "error",
        "queries": [],
        "conf": 0.0,
        "gap": 0.0,
        "chosen": -1,
        "n_proposals": 0,
        "costs": {},
        "seconds": 0.0,
    }


async def _evaluate(session: Session, index: int, ex: Example, image: Image | str) -> dict[str, Any]:
    """Run one example; per-example problems become a failed record, run-level ones raise."""
    start = time.perf_counter()
    rec = _base_record(index, ex)
    try:  # the area from the RLE runs: a miss still counts the ground truth in cIoU
        rec["gt_area"] = rec["union"] = ex.gt_area()
        rec["bucket"] = size_bucket(rec["gt_area"])
    except Exception:  # a corrupt mask: the check below records why
        pass
    try:
        if ex.error is not None:
            raise RefsegError(ex.error)
        if isinstance(image, str):
            raise RefsegError(image)
        gt = ex.gt_mask()
        if gt.shape != image.size:
            raise RefsegError(
                f"ground-truth mask {gt.shape[0]}x{gt.shape[1]} does not match the "
                f"image {image.height}x{image.width}"
            )
    except Exception as exc:  # broken example (bad mask, image, sentence): record, go on
        rec["error"] = str(exc) if isinstance(exc, RefsegError) else f"{type(exc).__name__}: {exc}"
        rec["seconds"] = round(time.perf_counter() - start, 4)
        return rec
    result = await session.run(image, ex.sentence, ex.example_id)  # run-level errors propagate
    rec.update(
        error=result.error,
        iterations=result.iterations,
        stop_reason=result.stop_reason,
        queries=result.queries,
        conf=round(result.conf, 6),
        gap=round(result.gap, 6),
        chosen=result.chosen,
        n_proposals=result.n_proposals,
        costs=result.costs.as_dict(),
    )
    # A fallback (e.g. the VLM failed mid-episode) still answers; only no answer is a failure.
    if result.mask is not None and (result.ok or result.stop_reason == "fallback"):
        try:
            inter, union = intersection_union(result.mask, gt)
            rec.update(
                failed=False,
                inter=inter,
                union=union,
                iou=1.0 if union == 0 else inter / union,
                mask=encode_rle(result.mask),
            )
        except ValueError as exc:
            rec["error"] = str(exc)
    elif rec["error"] is None:
        rec["error"] = "the episode chose no mask"
    rec["seconds"] = round(time.perf_counter() - start, 4)
    return rec


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


async def run_bench(
    rt: Runtime,
    examples: Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
) -> BenchResult:
    """Run (or resume) a benchmark in ``run_dir``; returns what this invocation did.

    Raises:
        ConfigError: ``run_dir`` holds a run with a different configuration, another
            invocation is running in it, or bad options.
        RefsegError: a run-level problem (missing checkpoint, ...) stopped the run; the lines
            already written stay, and running again resumes.
    """
    opts = options or RunOptions()
    if opts.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    if spec.perturb not in PERTURBATIONS:
        raise ConfigError(f"unknown perturbation {spec.perturb!r}; choose one of {', '.join(PERTURBATIONS)}")
    if len({ex.example_id for ex in examples}) != len(examples):
        raise ConfigError("the data set has duplicate example ids; the runner cannot resume it")
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SampleWriter(out)  # locks the run folder: one invocation at a time
    try:
        return await _run_locked(rt, examples, out, spec, opts, writer)
    finally:
        writer.close()


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
    done, torn = read_samples(out, repair=True)
    notes = [f"cut off {torn} torn or unreadable line(s) of samples.jsonl; redoing them"] if torn else []
    results_cfg = result_config(rt, spec, examples)
    run_info = {"created": started, "concurrency": opts.concurrency, "device": rt.settings.device}
    if check_config(out, results_cfg, run_info, recorded=bool(done)):
        notes.append("no example was recorded yet: config.json now holds this configuration")
    todo = [
        (i, ex)
        for i, ex in enumerate(examples)
        if ex.example_id not in done or (opts.retry_failed and done[ex.example_id].get("failed"))
    ]
    skipped = len(examples) - len(todo)
    if opts.limit is not None:
        todo = todo[: max(0, opts.limit)]
    index_of = {ex.example_id: i for i, ex in todo}
    groups = group_by_image([ex for _, ex in todo])

    run_id = uuid.uuid4().hex[:12]
    tracer = Tracer(out / TRACE, run_id=run_id)
    session = Session(rt.registry, rt.config, rt.cache, tracer, run_id=run_id)
    limiter = anyio.CapacityLimiter(opts.concurrency)
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](max_buffer_size=opts.concurrency * 2)
    bar = _progress(skipped + len(todo), skipped, opts.quiet)
    counters = {"written": 0, "failed": 0}
    t0 = time.perf_counter()

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
            rec = await _evaluate(session, index_of[ex.example_id], ex, image)
            await send.send(rec)
        finally:
            limiter.release_on_behalf_of(token)

    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(write_loop)
            async with send, anyio.create_task_group() as tg:
                for _image_id, group in groups:
                    # Decoding runs in a thread while the previous image's examples run.
                    image = await anyio.to_thread.run_sync(_load_image, group[0], spec.perturb)
                    for ex in group:
                        token = object()
                        await limiter.acquire_on_behalf_of(token)
                        tg.start_soon(one, ex, image, token)
    except BaseExceptionGroup as group_exc:
        leaves = _leaf_errors(group_exc)
        first = next((e for e in leaves if isinstance(e, RefsegError)), None)
        if first is not None:
            raise first from None
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        bar.close()
        tracer.close()
        aclose = getattr(rt.vlm, "aclose", None)
        if aclose is not None:  # the SDK's connection pool belongs to this event loop
            with anyio.CancelScope(shield=True):
                await aclose()

    wall = time.perf_counter() - t0
    invocation = {
        "run_id": run_id,
        "started": started,
        "wall_s": round(wall, 4),
        "examples_run": counters["written"],
        "images_run": len(groups),
        "concurrency": opts.concurrency,
        "skipped": skipped,
        "computed": dict(session.invoker.computed),
        "proposer": rt.config.proposer,
        "peak_cuda_memory_bytes": peak_cuda_memory(rt.settings.device),
    }
    with (out / INVOCATIONS).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(invocation) + "\n")
    summary = write_outputs(out, examples, bootstrap=opts.bootstrap)
    return BenchResult(
        out, summary, ran=counters["written"], skipped=skipped, failed_now=counters["failed"], notes=notes
    )


def write_outputs(
    run_dir: Path, examples: Sequence[Example] | None = None, *, bootstrap: int = 2000
) -> dict[str, Any]:
    """Recompute ``summary.json`` and ``ious.npy`` from the run folder's files."""
    records, _ = read_samples(run_dir)
    invocations = read_invocations(run_dir)
    config = read_json(run_dir / CONFIG) or {}
    if examples is not None:
        order = [ex.example_id for ex in examples]
    else:
        order = [r["example_id"] for r in sorted(records.values(), key=lambda r: r.get("index", 0))]
    expected = int(config.get("results", {}).get("examples", {}).get("count", len(order)))
    faults = trace_faults(run_dir / TRACE)
    summary = build_summary(
        records, order, invocations, config, expected=expected, bootstrap=bootstrap, traced_faults=faults
    )
    ious = np.array([records[eid]["iou"] for eid in order if eid in records], dtype=np.float64)
    np.save(run_dir / IOUS, ious)
    write_json(run_dir / SUMMARY, summary)
    return summary


def read_invocations(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / INVOCATIONS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


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


def run_bench_sync(
    rt: Runtime,
    examples: Sequence[Example],
    run_dir: str | Path,
    spec: DataSpec,
    options: RunOptions | None = None,
) -> BenchResult:
    """:func:`run_bench` from synchronous code."""
    return anyio.run(partial(run_bench, rt, examples, run_dir, spec, options))
