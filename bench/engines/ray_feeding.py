"""One run's examples through the Ray engine's worker pool (the driver's side).

:class:`Feeding` grants example slots with a :class:`~bench.engines.ray_schedule.Schedule`,
makes one actor call per example, writes each record as its call returns, and sends a dead
worker's examples back to be redone. The invocation's groups are read in a thread: the first
ones (:func:`read_head`) before the first call, the rest while the examples run.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from bench.data.examples import Example, ImageSource, self_contained
from bench.engines.base import EngineJob, EngineStats, RecordStream
from bench.engines.ray_cluster import import_ray, one_line
from bench.engines.ray_schedule import Group, Item, Schedule, split_groups
from bench.engines.ray_worker import GroupResult, WorkerJob
from bench.evaluate import failed_record
from bench.loop_lag import LoopLag
from bench.records import SampleRecord
from tools.types import Image

if TYPE_CHECKING:
    from bench.engines.ray_engine import RayEngine


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


def read_head(first: list[Item], groups: Iterator[list[Item]], workers: int) -> list[list[Item]]:
    """``first`` and the groups after it, up to ``workers`` of them (blocking: a data set
    read): enough to know whether the invocation has fewer groups than workers."""
    head = [first]
    while len(head) < workers and (group := next(groups, None)) is not None:
        head.append(group)
    return head


class Feeding:
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
        workers = len(engine.slots)
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
        slot, ray = self.engine.slots[worker], self.engine.ray
        generation = slot.generation
        item = (item[0], self._shippable(group, item[1]))
        try:
            result: GroupResult = await self.engine.call(
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
            stored = self.stored[group.image] = StoredImage(self.engine.ray.put(source))
        return self_contained(dataclasses.replace(ex, image_ref=stored))

    async def _replace(self, worker: int, generation: int) -> None:
        try:
            if await self.engine.replace(self.engine.slots[worker], generation):
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
