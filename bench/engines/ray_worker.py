"""The Ray engine's worker: one actor process running image groups with its own session.

An actor builds its runtime from the picklable :class:`bench.options.EpisodeOptions` with
:func:`bench.runtime.build_runtime`, once per tool configuration (a suite's sub-runs that
differ only in controller or ``max_iter`` share it), so models load once per worker, lazily on
the first example as in the local engine. Ray runs an async actor's methods on one asyncio
event loop in the actor's process: the calls the driver keeps in flight run concurrently there
(anyio on asyncio), so VLM latency overlaps as it does locally. The driver decides how many
(:mod:`bench.engines.ray_schedule`: it grants example slots over the cluster), and sends a
group's examples one call each; the group's image is decoded once per worker
(:class:`ImageCache`).

Trace events go to a :class:`agent.tracing.CollectingSink`: each example's lines, and the
images its VLM calls were shown (bytes named by their digest), return with its record; the
driver stores the images in the run's ``vlm_images/`` and appends the lines to ``trace.jsonl``
(one writer, and it works across nodes: no worker needs the driver's disk). This module does not import Ray:
:mod:`bench.engines.ray_engine` turns :class:`EpisodeWorker` into an actor class.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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
from tools.types import Image


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to run a run's groups (sent with every call; small).

    Attributes:
        run_id: the invocation's id (a new one drops the previous run's session).
        options: what builds the runtime.
        perturb: the image perturbation.
        protocol: the name of the protocol that scores the examples (the worker looks it up
            among its installed dataset adapters).
        limiter: the handle of the run's VLM limiter actor (``None``: no VLM limits), which
            every worker's VLM client goes through (:mod:`bench.engines.vlm_limiter`).
    """

    run_id: str
    options: EpisodeOptions
    perturb: str
    protocol: str = "mask-iou"
    limiter: Any = None


@dataclass
class GroupResult:
    """One call's outcome (examples of one image group: the engine sends one a call).

    Attributes:
        records: one ``samples.jsonl`` record per example, in the group's order.
        lines: the group's trace lines (already redacted).
        images: the images those lines refer to, by file name (``<sha256>.<ext>``).
        computed: this worker's tool computations in this run so far (cumulative).
        image_encodes: this worker's proposer's image encodes in this run so far
            (cumulative; ``None``: the proposer does not count them).
        peak_cuda_memory_bytes: this worker's CUDA peak in this run.
        pid: the worker's process id.
        lag: this worker's event-loop lag since its last call (:meth:`LoopLag.as_record`).
        cpu_s: CPU seconds this worker's process spent since its last call (or its run's start).
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
class _Decoded:
    ready: anyio.Event = field(default_factory=anyio.Event)
    image: Image | str = ""
    holders: int = 0


class ImageCache:
    """A run's decoded images on one worker, by the driver's image key: decoded once (in a
    thread) while calls for it run, the ``keep`` most recently released kept after (the
    next example of a group usually comes right after the last one finished).

    Args:
        keep: released images kept.
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self.decodes = 0  # images decoded (the tests count them)
        self._held: dict[int, _Decoded] = {}
        self._released: OrderedDict[int, Image | str] = OrderedDict()

    @contextlib.asynccontextmanager
    async def hold(self, key: int, ex: Example, perturb: str) -> AsyncIterator[Image | str]:
        """``ex``'s (perturbed) image, or the error text that fails its examples."""
        entry = self._held.get(key)
        first = entry is None
        if entry is None:
            entry = self._held[key] = _Decoded()
            if key in self._released:
                entry.image = self._released.pop(key)
                entry.ready.set()
        entry.holders += 1
        try:
            if first and not entry.ready.is_set():
                self.decodes += 1
                try:  # the thread is not abandoned: a cancelled caller still fills the entry in
                    entry.image = await anyio.to_thread.run_sync(load_example_image, ex, perturb)
                finally:
                    entry.ready.set()
            await entry.ready.wait()
            yield entry.image
        finally:
            entry.holders -= 1
            if not entry.holders:
                del self._held[key]
                self._released[key] = entry.image
                while len(self._released) > self.keep:
                    self._released.popitem(last=False)


@dataclass
class _Run:
    run_id: str
    session: Session
    sink: CollectingSink
    images: ImageCache
    device: str
    encodes_before: int | None  # the proposer's counter when the run began (tools outlive runs)
    monitor: LagMonitor
    cpu_mark: float  # process CPU seconds when the last call's figures were taken

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

    async def run_group(
        self, job: WorkerJob, items: list[tuple[int, Example]], image_key: int = 0
    ) -> GroupResult:
        """Run examples of one image (``(index, example)`` pairs) concurrently.

        Args:
            job: the run.
            items: the examples (the driver sends one per call: it grants the slots).
            image_key: the image group's number in the run: calls with the same key share
                one decode of the image while any of them runs (and a few after).

        Raises:
            RefsegError: a run-level problem (missing checkpoint, ...); the driver stops the run.
        """
        run = self._prepare(job)
        protocol = protocol_named(job.protocol)
        outcomes: list[tuple[SampleRecord | None, Collected]] = [(None, Collected())] * len(items)

        async def one(k: int, index: int, ex: Example, image: Image | str) -> None:
            with collect_lines() as collected:
                rec = await evaluate_example(run.session, index, ex, image, protocol)
                outcomes[k] = (rec, collected)

        try:
            async with (
                run.images.hold(image_key, items[0][1], job.perturb) as image,
                anyio.create_task_group() as tg,
            ):
                for k, (index, ex) in enumerate(items):
                    tg.start_soon(one, k, index, ex, image)
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
        """The run's session, made on its first call (a new run id replaces the last run's)."""
        if self._run is None or self._run.run_id != job.run_id:
            rt = self._runtime(job.options)
            if rt.vlm is not None and job.limiter is not None:  # the cluster's one limiter
                rt.vlm.limiter = RemoteLimiter(job.limiter)
            sink = CollectingSink()
            tracer = Tracer(None, run_id=job.run_id, sink=sink)
            session = Session(rt.registry, rt.config, rt.cache, tracer, run_id=job.run_id)
            reset_peak_cuda_memory(rt.settings.device)
            if self._run is not None:
                self._run.monitor.stop()
            monitor = LagMonitor()
            # Ray's asyncio loop runs this actor's methods; the task is kept (the loop holds it weakly).
            self._monitor_task = asyncio.get_running_loop().create_task(monitor.run())
            before = image_encodes(session)
            run = _Run(
                job.run_id,
                session,
                sink,
                ImageCache(),
                rt.settings.device,
                before,
                monitor,
                time.process_time(),
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
