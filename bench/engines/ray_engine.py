"""The Ray engine: examples sent to a pool of Ray actors, one call each; the driver writes alone.

Why actors fed by the driver, not Ray Data ``map_batches``: each example's record must reach
one writer as soon as it is done, a worker's death must send exactly its unfinished examples
to be redone (and a group that keeps killing
workers must become failed records, not an endless retry), a run-level error (a missing
checkpoint) must surface as itself in one line, and the VLM limit is a fixed number of
examples in flight over the cluster. With actors and one ``asyncio`` driver loop each of these
is a few lines here; Ray Data would add a streaming executor (its own CPU reservations, batch
formats for our example objects, retries we could not bound) and the ``ray[data]`` extra.
Ray still does what a home-made scheduler should not: placement, GPU assignment
(``CUDA_VISIBLE_DEVICES`` per actor), object transfer and failure detection.

Flow: the driver grants example slots (:mod:`bench.engines.ray_schedule`): one count of
``--concurrency`` for the cluster, each free slot to the least busy worker that has work, an
image group's examples kept on one worker. Each example is one actor call, so its slot is free
the moment it returns: the cluster never has more than ``--concurrency`` examples in flight,
and no fewer while any are waiting. Each call's record, trace lines and images go to the
runner's single writer as it returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio

from bench.data.examples import Example, ImageSource, self_contained
from bench.engines import ray_reaper
from bench.engines.base import EngineJob, EngineStats, RecordStream
from bench.engines.ray_cluster import (
    WorkerPlan,
    check_reachable,
    connect,
    import_ray,
    one_line,
    plan_workers,
    worker_options,
)
from bench.engines.ray_schedule import Group, Item, Schedule, split_groups
from bench.engines.ray_worker import EpisodeWorker, GroupResult, WorkerJob, result_view
from bench.engines.vlm_limiter import LimiterActor
from bench.evaluate import failed_record
from bench.loop_lag import LoopLag
from bench.options import EngineOptions
from bench.records import SampleRecord
from bench.samples import config_differences
from tools.errors import ConfigError, RefsegError
from tools.types import Image

START_TIMEOUT_S = 300.0  # an actor that is not up by then (no node fits it) stops the run
# Called on the driver after each call's record is written: (examples written so far, the
# call's result). The first call of a run returns while its worker still has the rest of its
# image group: the kill-a-worker test and benchmark kill it there.
# The kill-a-worker test and benchmark use it; the product passes none.
GroupHook = Callable[[int, GroupResult], None]


@dataclass
class _Slot:
    """One worker position; its actor is replaced when it dies (``generation`` counts)."""

    actor: Any
    generation: int = 0


@dataclass(frozen=True, eq=False)
class StoredImage:
    """An :class:`~bench.data.examples.ImageSource` in Ray's object store: a worker fetches
    it (in the thread that decodes it) only when it has not decoded this image already."""

    ref: Any  # ray.ObjectRef of the image's self-contained ImageSource

    def load(self) -> Image:
        source: ImageSource = import_ray().get(self.ref)
        return source.load()


def died_records(group: Group, items: list[Item]) -> list[SampleRecord]:
    """Failed records for examples of a group that killed its worker ``MAX_ATTEMPTS`` times."""
    error = (
        f"the Ray worker running this image died {group.deaths} times; "
        f"last: {group.last_death} (--retry-failed redoes it)"
    )
    return [failed_record(index, ex, error) for index, ex in items]


class RayEngine:
    """Runs episodes on a pool of Ray actors (see the module docstring).

    Args:
        options: the cluster address, workers and their resources.
        on_group: fault-injection and measuring hook (see :data:`GroupHook`); ``None`` in the product.
    """

    name = "ray"

    def __init__(self, options: EngineOptions, *, on_group: GroupHook | None = None):
        self.options = options
        self.on_group = on_group
        self._ray: Any = None
        self._owns_connection = False
        self._plan: WorkerPlan | None = None
        self._slots: list[_Slot] = []
        self._actor_class: Any = None
        self._limiter: tuple[Any, Any] | None = None  # (limits, the run's VLM limiter actor)
        self._watchdog: ray_reaper.Watchdog | None = None

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        # The driver holds this invocation's groups (references into the data set; each
        # example is made self-contained when sent): a dead worker's examples are sent again.
        # They are read in a thread: the first few now, the rest while the examples run.
        first = await anyio.to_thread.run_sync(next, job.groups, None)
        if first is None:
            return EngineStats(self.name, workers=len(self._slots))
        started = time.perf_counter()
        plan = await self._start(job)
        base = WorkerJob(
            job.run_id,
            worker_options(job.rt, plan.gpus),
            job.perturb,
            protocol=job.protocol.name,
            limiter=self._vlm_limiter(job),
        )
        await self._check_workers(base, result_view(job.rt))
        head = await anyio.to_thread.run_sync(read_head, first, job.groups, plan.workers)
        feeding = _Feeding(self, job, send, head, job.groups if len(head) == plan.workers else None)
        feeding.stats.start_s = time.perf_counter() - started
        job.on_start()
        cpu0 = time.process_time()  # the driver's share: feeding, collecting, writing
        stats = await feeding.run(base)
        stats.cpu_s += time.process_time() - cpu0
        return stats

    def _vlm_limiter(self, job: EngineJob) -> Any:
        """The run's VLM limiter actor (one per engine and limits; ``None`` without limits)."""
        limits = getattr(getattr(job.rt.vlm, "config", None), "limits", None)
        if limits is None or not limits.enabled:
            return None
        if self._limiter is None or self._limiter[0] != limits:
            actor = self._ray.remote(LimiterActor).options(num_cpus=0, max_concurrency=10_000)
            self._limiter = (limits, actor.remote(limits))
        return self._limiter[1]

    async def aclose(self) -> None:
        """Close and stop the actors; shut the cluster down (or disconnect) if this engine started it."""
        ray, slots, self._slots = self._ray, self._slots, []
        limiter, self._limiter = self._limiter, None
        if ray is None:
            return
        if limiter is not None:
            ray.kill(limiter[1])
        with anyio.move_on_after(30):
            for slot in slots:
                with anyio.move_on_after(10), contextlib.suppress(ray.exceptions.RayError):
                    await slot.actor.close.remote()  # a dead actor has nothing left to close
        for slot in slots:
            ray.kill(slot.actor)
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False
        if self._watchdog is not None:  # shut down in order: the watchdog has nothing to do
            self._watchdog.release()
            self._watchdog = None

    # -- start-up -----------------------------------------------------------------------------

    async def _start(self, job: EngineJob) -> WorkerPlan:
        """Connect (or start a local cluster) and start the workers, once per engine."""
        if self._plan is not None:
            return self._plan
        ray = self._ray = import_ray()
        device = job.rt.options.models.device if job.rt.options is not None else None
        if self.options.ray_address:  # a wrong address fails now, connected or not
            check_reachable(self.options.ray_address)
        if not ray.is_initialized():  # else: this process's connection (a library caller's)
            connect(ray, self.options)
            self._owns_connection = True
        plan = plan_workers(self.options, ray.cluster_resources(), ray.available_resources(), device)
        plan = dataclasses.replace(plan, workers=min(plan.workers, job.concurrency))
        self._actor_class = ray.remote(EpisodeWorker).options(
            num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0
        )
        self._slots = [_Slot(self._actor_class.remote()) for _ in range(plan.workers)]
        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                tg.start_soon(self._await_started, slot.actor)
        if self._owns_connection and not self.options.ray_address:  # our own local cluster
            self._watchdog = ray_reaper.start(ray_reaper.ray_descendants(os.getpid()))
        self._plan = plan
        return plan

    async def _await_started(self, actor: Any) -> None:
        ray = self._ray
        with anyio.move_on_after(START_TIMEOUT_S) as scope:
            try:
                await actor.ping.remote()
            except ray.exceptions.RayError as exc:
                raise RefsegError(
                    f"a Ray worker could not start ({one_line(exc)}); refseg-loop and its "
                    "dependencies must be installed on every node"
                ) from None
        if scope.cancelled_caught:
            raise RefsegError(f"a Ray worker did not start within {START_TIMEOUT_S:.0f} s; is a node free?")

    async def _check_workers(self, base: WorkerJob, expected: dict[str, Any]) -> None:
        """Every worker builds the run's runtime now (a bad option stops the run here, in one
        line) and must describe the same result-defining configuration as the driver."""
        views: list[dict[str, Any]] = []

        async def describe(slot: _Slot) -> None:
            try:
                views.append(await self._call(slot.actor.describe.remote(base)))
            except self._ray.exceptions.RayActorError as exc:
                raise RefsegError(f"a Ray worker died while building its tools: {one_line(exc)}") from None

        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                tg.start_soon(describe, slot)
        for view in views:
            diffs = config_differences(expected, view)
            if diffs:
                raise ConfigError(
                    "a Ray worker built another configuration than the driver's ("
                    + "; ".join(diffs[:4])
                    + "); is the same refseg-loop version installed on every node?"
                )

    async def _call(self, ref: Any) -> Any:
        """Await an actor call; a task error becomes the worker's own RefsegError."""
        ray = self._ray
        try:
            return await ref
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RefsegError):
                raise cause from None
            raise RefsegError(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None

    async def replace(self, slot: _Slot, generation: int) -> bool:
        """Replace ``slot``'s dead actor by a new one; False when another call already did."""
        if slot.generation != generation:
            return False
        self._ray.kill(slot.actor)
        slot.actor = self._actor_class.remote()
        slot.generation += 1  # before waiting: the other calls that saw it die skip this
        await self._await_started(slot.actor)
        return True


def read_head(first: list[Item], groups: Iterator[list[Item]], workers: int) -> list[list[Item]]:
    """``first`` and the groups after it, up to ``workers`` of them (blocking: a data set
    read): enough to know whether the invocation has fewer groups than workers."""
    head = [first]
    while len(head) < workers and (group := next(groups, None)) is not None:
        head.append(group)
    return head


class _Feeding:
    """One run's examples through the pool: slots granted by a :class:`Schedule`, one actor
    call per example, each record written as its call returns, a dead worker's examples redone.

    Args:
        head: the invocation's first groups (all of them when ``rest`` is ``None``; with
            fewer groups than workers, they are split).
        rest: the groups after ``head``, read in a thread while the examples run.
    """

    def __init__(
        self,
        engine: RayEngine,
        job: EngineJob,
        send: RecordStream,
        head: list[list[Item]],
        rest: Iterator[list[Item]] | None,
    ):
        self.engine, self.job, self.send = engine, job, send
        workers = len(engine._slots)
        parts, split = split_groups(head, workers)
        self.schedule = Schedule(parts, workers, job.concurrency)
        self.parts_left = Counter(group.image for group in parts)  # an image is done with its parts
        self.rest = rest
        self.images_read = len(head)
        self.written = 0  # examples whose records came back from a worker
        self.stats = EngineStats(engine.name, workers=workers, groups_split=split)
        self.latest: dict[int, dict[str, int]] = {}  # each worker's cumulative computations
        self.encodes: dict[int, int | None] = {}  # each worker's cumulative image encodes
        self.stored: dict[int, StoredImage] = {}  # each unfinished image, put in the object store once
        self._changed = anyio.Event()

    async def run(self, base: WorkerJob) -> EngineStats:
        async with anyio.create_task_group() as tg:
            if self.rest is not None:
                tg.start_soon(self._read_rest, self.rest)
            while self.parts_left or self.rest is not None:
                granted = self.schedule.grant()
                if granted is None:  # every slot taken, or nothing to send until a call returns
                    self._changed = anyio.Event()
                    await self._changed.wait()
                    continue
                tg.start_soon(self._one, base, *granted)
        computed: dict[str, int] = {}
        for counts in self.latest.values():
            for tool, n in counts.items():
                computed[tool] = computed.get(tool, 0) + n
        self.stats.computed = computed
        known = [n for n in self.encodes.values() if n is not None]
        self.stats.image_encodes = sum(known) if known and len(known) == len(self.encodes) else None
        return self.stats

    async def _read_rest(self, rest: Iterator[list[Item]]) -> None:
        """Read the remaining groups, one at a time in a thread, into the schedule."""
        while (items := await anyio.to_thread.run_sync(next, rest, None)) is not None:
            self.schedule.add(Group(self.images_read, items))
            self.parts_left[self.images_read] += 1
            self.images_read += 1
            self._changed.set()
        self.rest = None
        self._changed.set()

    async def _one(self, base: WorkerJob, worker: int, group: Group, item: Item) -> None:
        """Send one example to ``worker``; write its record, or send it back when the worker died."""
        slot, ray = self.engine._slots[worker], self.engine._ray
        generation = slot.generation
        item = (item[0], self._shippable(group, item[1]))
        try:
            result: GroupResult = await self.engine._call(
                slot.actor.run_group.remote(base, [item], group.image)
            )
        except ray.exceptions.RayActorError as exc:
            self.schedule.returned(worker)
            redo, failed = self.schedule.died(worker, generation, group, item, one_line(exc))
            self.stats.groups_redone += redo
            replacing = slot.generation == generation  # the first call to see it die replaces it
            if replacing:
                self.schedule.pause(worker)
            self._changed.set()
            if replacing:
                await self._replace(worker, generation)
            if failed:
                await self._write(group, died_records(group, failed), None)
        else:
            self.schedule.returned(worker)
            self._changed.set()
            await self._write(group, result.records, result)

    def _shippable(self, group: Group, ex: Example) -> Example:
        """``ex`` as it travels: its masks read, and its image a reference to the image's one
        copy in Ray's object store (bytes or pixels, not a data set handle), which a worker
        fetches only when it has not decoded that image already."""
        if ex.image_ref is (stored := self.stored.get(group.image)):
            return ex  # sent before (its worker died)
        if stored is None:
            source = self_contained(group.items[0][1]).image_ref
            stored = self.stored[group.image] = StoredImage(self.engine._ray.put(source))
        return self_contained(dataclasses.replace(ex, image_ref=stored))

    async def _replace(self, worker: int, generation: int) -> None:
        try:
            if await self.engine.replace(self.engine._slots[worker], generation):
                self.stats.worker_deaths += 1
        finally:
            self.schedule.resume(worker)
            self._changed.set()

    async def _write(self, group: Group, records: list[SampleRecord], result: GroupResult | None) -> None:
        if result is not None:
            self._merge(result)
            self.job.tracer.write_images(result.images)  # before the lines that refer to them
            self.job.tracer.write_lines(result.lines)
        for rec in records:
            await self.send.send(rec)
        if result is not None:
            self.written += len(records)
            if self.engine.on_group is not None:
                self.engine.on_group(self.written, result)
        if self.schedule.finished(group, len(records)):
            self.parts_left[group.image] -= 1
            if not self.parts_left[group.image]:
                del self.parts_left[group.image]
                self.stored.pop(group.image, None)  # the last reference: Ray frees the image
                self.stats.images += 1
            self._changed.set()  # the last part: the run may be over

    def _merge(self, result: GroupResult) -> None:
        """A call's figures into the run's (counts are cumulative per worker: calls may return
        out of order, so the largest is the latest)."""
        latest = self.latest.setdefault(result.pid, {})
        for tool, n in result.computed.items():
            latest[tool] = max(n, latest.get(tool, 0))
        encodes, before = result.image_encodes, self.encodes.get(result.pid)
        self.encodes[result.pid] = None if encodes is None else max(encodes, before or 0)
        self.stats.lag.merge(LoopLag.from_record(result.lag))
        self.stats.cpu_s += result.cpu_s
        if result.peak_rss_bytes is not None:
            self.stats.worker_peak_rss_bytes = max(
                result.peak_rss_bytes, self.stats.worker_peak_rss_bytes or 0
            )
        peak = result.peak_cuda_memory_bytes
        if peak is not None:
            self.stats.peak_cuda_memory_bytes = max(peak, self.stats.peak_cuda_memory_bytes or 0)
