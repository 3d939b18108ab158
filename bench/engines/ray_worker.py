"""The Ray engine's worker: one actor process running image groups with its own session.

An actor builds its runtime from the picklable :class:`bench.options.EpisodeOptions` with
:func:`bench.runtime.build_runtime`, once per tool configuration (a suite's sub-runs that
differ only in controller or ``max_iter`` share it), so models load once per worker, lazily on
the first example as in the local engine. Ray runs an async actor's methods on one asyncio
event loop in the actor's process: the groups the driver keeps in flight and their examples run
concurrently there (anyio on asyncio), at most ``share`` examples at once, so VLM latency
overlaps as it does locally.

Trace events go to a :class:`agent.tracing.CollectingSink`: each example's lines, and the
images its VLM calls were shown (bytes named by their digest), return with its record; the
driver stores the images in the run's ``vlm_images/`` and appends the lines to ``trace.jsonl``
(one writer, and it works across nodes: no worker needs the driver's disk). This module does not import Ray:
:mod:`bench.engines.ray_engine` turns :class:`EpisodeWorker` into an actor class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from agent.session import Session
from agent.tracing import Collected, CollectingSink, Tracer, collect_lines
from bench.data.examples import Example
from bench.data.registry import protocol_named
from bench.engines.base import (
    encodes_since,
    first_error,
    image_encodes,
    peak_cuda_memory,
    peak_rss_bytes,
    reset_peak_cuda_memory,
)
from bench.engines.vlm_limiter import RemoteLimiter
from bench.evaluate import evaluate_example, load_example_image
from bench.loop_lag import LagMonitor
from bench.options import EpisodeOptions
from bench.records import SampleRecord
from bench.runtime import Runtime, build_runtime, describe_config, result_settings


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to run a run's groups (sent with every call; small).

    Attributes:
        run_id: the invocation's id (a new one drops the previous run's session).
        options: what builds the runtime.
        perturb: the image perturbation.
        share: examples this worker runs at once (its share of ``--concurrency``).
        protocol: the name of the protocol that scores the examples (the worker looks it up
            among its installed dataset adapters).
        limiter: the handle of the run's VLM limiter actor (``None``: no VLM limits), which
            every worker's VLM client goes through (:mod:`bench.engines.vlm_limiter`).
    """

    run_id: str
    options: EpisodeOptions
    perturb: str
    share: int
    protocol: str = "mask-iou"
    limiter: Any = None


@dataclass
class GroupResult:
    """One image group's outcome.

    Attributes:
        records: one ``samples.jsonl`` record per example, in the group's order.
        lines: the group's trace lines (already redacted).
        images: the images those lines refer to, by file name (``<sha256>.<ext>``).
        computed: this worker's tool computations in this run so far (cumulative).
        image_encodes: this worker's proposer's image encodes in this run so far
            (cumulative; ``None``: the proposer does not count them).
        peak_cuda_memory_bytes: this worker's CUDA peak in this run.
        pid: the worker's process id.
        lag: this worker's event-loop lag since its last group (:meth:`LoopLag.as_record`).
        cpu_s: CPU seconds this worker's process spent since its last group (or its run's start).
        peak_rss_bytes: this worker process's peak resident set so far.
    """

    records: list[SampleRecord]
    lines: list[str]
    images: dict[str, bytes]
    computed: dict[str, int]
    peak_cuda_memory_bytes: int | None
    pid: int
    lag: dict[str, Any] | None = None
    cpu_s: float = 0.0
    peak_rss_bytes: int | None = None
    image_encodes: int | None = None


def result_view(rt: Runtime) -> dict[str, Any]:
    """What must be equal on the driver and on a worker for the results to mean the same."""
    return {"episode": describe_config(rt)["episode"], "settings": result_settings(rt)}


def tools_key(options: EpisodeOptions) -> str:
    """Options that build the same tools (registry, cache, VLM) share one runtime's models."""
    return repr((options.models, options.vlm, options.cache, options.needs_vlm, options.wants_vlm))


@dataclass
class _Run:
    run_id: str
    session: Session
    sink: CollectingSink
    limiter: anyio.CapacityLimiter
    device: str
    encodes_before: int | None  # the proposer's counter when the run began (tools outlive runs)
    monitor: LagMonitor
    cpu_mark: float  # process CPU seconds when the last group's figures were taken

    def cpu_since(self) -> float:
        """CPU seconds since the last call (or the run's start)."""
        now = time.process_time()
        spent, self.cpu_mark = now - self.cpu_mark, now
        return spent


class EpisodeWorker:
    """A Ray actor's state: runtimes by tool configuration, and the current run's session."""

    def __init__(self) -> None:
        self._tools: dict[str, Runtime] = {}  # by tools_key: these own the models
        self._runtimes: dict[str, Runtime] = {}  # by the full options
        self._run: _Run | None = None
        self._monitor_task: asyncio.Task[None] | None = None

    async def ping(self) -> int:
        """The worker's process id (answers once the actor has started)."""
        return os.getpid()

    async def describe(self, job: WorkerJob) -> dict[str, Any]:
        """Prepare ``job``'s run and return its :func:`result_view` (the driver compares it).

        Its tools are built and their models loaded here (the engine's start-up), not in the
        first episode.

        Raises:
            RefsegError: the runtime cannot be built here (unknown tool, bad option, no VLM,
                a missing checkpoint).
        """
        rt = self._runtime(job.options)
        await Session(rt.registry, rt.config, rt.cache).setup()
        return result_view(rt)

    async def run_group(self, job: WorkerJob, items: list[tuple[int, Example]]) -> GroupResult:
        """Run one image's examples (``(index, example)`` pairs) concurrently.

        Raises:
            RefsegError: a run-level problem (missing checkpoint, ...); the driver stops the run.
        """
        run = self._prepare(job)
        protocol = protocol_named(job.protocol)
        image = await anyio.to_thread.run_sync(load_example_image, items[0][1], job.perturb)
        outcomes: list[tuple[SampleRecord | None, Collected]] = [(None, Collected())] * len(items)

        async def one(k: int, index: int, ex: Example) -> None:
            async with run.limiter:
                with collect_lines() as collected:
                    rec = await evaluate_example(run.session, index, ex, image, protocol)
                    outcomes[k] = (rec, collected)

        try:
            async with anyio.create_task_group() as tg:
                for k, (index, ex) in enumerate(items):
                    tg.start_soon(one, k, index, ex)
        except BaseExceptionGroup as group_exc:
            raise first_error(group_exc) from None
        parts = [run.sink.take_loose(), *(collected for _, collected in outcomes)]
        return GroupResult(
            records=[rec for rec, _ in outcomes if rec is not None],
            lines=[line for part in parts for line in part.lines],
            images={name: data for part in parts for name, data in part.images.items()},
            computed=dict(run.session.invoker.computed),
            image_encodes=encodes_since(run.session, run.encodes_before),
            peak_cuda_memory_bytes=peak_cuda_memory(run.device),
            pid=os.getpid(),
            lag=run.monitor.take().as_record(),
            cpu_s=run.cpu_since(),
            peak_rss_bytes=peak_rss_bytes(),
        )

    async def close(self) -> None:
        """Close the VLM connections (they belong to this loop), the tools and the caches."""
        if self._run is not None:
            self._run.monitor.stop()
        self._run = None
        for rt in self._tools.values():
            await rt.aclose_vlm()
            rt.close()
        self._tools.clear()
        self._runtimes.clear()

    def _prepare(self, job: WorkerJob) -> _Run:
        """The run's session, made on its first group (a new run id replaces the last run's)."""
        if self._run is None or self._run.run_id != job.run_id:
            rt = self._runtime(job.options)
            if rt.vlm is not None and job.limiter is not None:  # the cluster's one limiter
                rt.vlm.limiter = RemoteLimiter(job.limiter)
            sink = CollectingSink()
            tracer = Tracer(None, run_id=job.run_id, sink=sink)
            session = Session(rt.registry, rt.config, rt.cache, tracer, run_id=job.run_id)
            reset_peak_cuda_memory(rt.settings.device)
            limiter = anyio.CapacityLimiter(job.share)
            if self._run is not None:
                self._run.monitor.stop()
            monitor = LagMonitor()
            # Ray's asyncio loop runs this actor's methods; the task is kept (the loop holds it weakly).
            self._monitor_task = asyncio.get_running_loop().create_task(monitor.run())
            before = image_encodes(session)
            run = _Run(
                job.run_id, session, sink, limiter, rt.settings.device, before, monitor, time.process_time()
            )
            self._run = run
        return self._run

    def _runtime(self, options: EpisodeOptions) -> Runtime:
        key = repr(options)
        if key not in self._runtimes:
            fresh = build_runtime(options)  # cheap: models load on first use
            shared = self._tools.setdefault(tools_key(options), fresh)
            if shared is not fresh:  # same tools: keep the loaded ones, take this configuration
                fresh.close()
                fresh = dataclasses.replace(shared, config=fresh.config, options=options)
            self._runtimes[key] = fresh
        return self._runtimes[key]
