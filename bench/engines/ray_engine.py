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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

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
from bench.engines.ray_feeding import Feeding, read_head
from bench.engines.ray_worker import EpisodeWorker, GroupResult, WorkerJob, result_view
from bench.engines.vlm_limiter import LimiterActor
from bench.options import EngineOptions
from bench.samples import config_differences
from tools.errors import ConfigError, RefsegError

START_TIMEOUT_S = 300.0  # an actor that is not up by then (no node fits it) stops the run
# Called on the driver after each call's record is written: (examples written so far, the
# call's result). The first call of a run returns while its worker still has the rest of its
# image group: the kill-a-worker test and benchmark kill it there; the product passes none.
GroupHook = Callable[[int, GroupResult], None]


@dataclass
class Slot:
    """One worker position; its actor is replaced when it dies (``generation`` counts)."""

    actor: Any
    generation: int = 0


class RayEngine:
    """Runs episodes on a pool of Ray actors (see the module docstring).

    Args:
        options: the cluster address, workers and their resources.
        on_group: fault-injection and measuring hook (see :data:`GroupHook`); ``None`` in the product.

    Attributes:
        ray: the ``ray`` module, once started.
        slots: the worker positions (:class:`bench.engines.ray_feeding.Feeding` sends to them).
    """

    name = "ray"

    def __init__(self, options: EngineOptions, *, on_group: GroupHook | None = None):
        self.options = options
        self.on_group = on_group
        self.ray: Any = None
        self.slots: list[Slot] = []
        self._owns_connection = False
        self._plan: WorkerPlan | None = None
        self._actor_class: Any = None
        self._limiter: tuple[Any, Any] | None = None  # (limits, the run's VLM limiter actor)
        self._watchdog: ray_reaper.Watchdog | None = None

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        # The driver holds this invocation's groups (references into the data set; each
        # example is made self-contained when sent): a dead worker's examples are sent again.
        # They are read in a thread: the first few now, the rest while the examples run.
        first = await anyio.to_thread.run_sync(next, job.groups, None)
        if first is None:
            return EngineStats(self.name, workers=len(self.slots))
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
        feeding = Feeding(self, job, send, head, job.groups if len(head) == plan.workers else None)
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
            actor = self.ray.remote(LimiterActor).options(num_cpus=0, max_concurrency=10_000)
            self._limiter = (limits, actor.remote(limits))
        return self._limiter[1]

    async def aclose(self) -> None:
        """Close and stop the actors; shut the cluster down (or disconnect) if this engine started it."""
        ray, slots, self.slots = self.ray, self.slots, []
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
        ray = self.ray = import_ray()
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
        self.slots = [Slot(self._actor_class.remote()) for _ in range(plan.workers)]
        async with anyio.create_task_group() as tg:
            for slot in self.slots:
                tg.start_soon(self._await_started, slot.actor)
        if self._owns_connection and not self.options.ray_address:  # our own local cluster
            self._watchdog = ray_reaper.start(ray_reaper.ray_descendants(os.getpid()))
        self._plan = plan
        return plan

    async def _await_started(self, actor: Any) -> None:
        ray = self.ray
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

        async def describe(slot: Slot) -> None:
            try:
                views.append(await self.call(slot.actor.describe.remote(base)))
            except self.ray.exceptions.RayActorError as exc:
                raise RefsegError(f"a Ray worker died while building its tools: {one_line(exc)}") from None

        async with anyio.create_task_group() as tg:
            for slot in self.slots:
                tg.start_soon(describe, slot)
        for view in views:
            diffs = config_differences(expected, view)
            if diffs:
                raise ConfigError(
                    "a Ray worker built another configuration than the driver's ("
                    + "; ".join(diffs[:4])
                    + "); is the same refseg-loop version installed on every node?"
                )

    async def call(self, ref: Any) -> Any:
        """Await an actor call; a task error becomes the worker's own RefsegError."""
        ray = self.ray
        try:
            return await ref
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RefsegError):
                raise cause from None
            raise RefsegError(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None

    async def replace(self, slot: Slot, generation: int) -> bool:
        """Replace ``slot``'s dead actor by a new one; False when another call already did."""
        if slot.generation != generation:
            return False
        self.ray.kill(slot.actor)
        slot.actor = self._actor_class.remote()
        slot.generation += 1  # before waiting: the other calls that saw it die skip this
        await self._await_started(slot.actor)
        return True
