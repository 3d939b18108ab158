"""The local engine: one process, images decoded in turn, their examples run concurrently."""

from __future__ import annotations

import time

import anyio
import anyio.to_thread

from agent.session import Session
from bench.data.examples import Example
from bench.engines.base import (
    EngineJob,
    EngineStats,
    RecordStream,
    encodes_since,
    image_encodes,
    peak_cuda_memory,
    reset_peak_cuda_memory,
)
from bench.evaluate import evaluate_example, load_example_image
from tools.types import Image


class LocalEngine:
    """Runs every episode in this process's event loop (an anyio task group).

    At most ``job.concurrency`` examples are in flight (a ``CapacityLimiter``); the next image
    group is read from the data set and its image decoded (and perturbed) once, in a thread,
    while the previous image's examples run, so one group at a time is held.
    """

    name = "local"

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        rt = job.rt
        reset_peak_cuda_memory(rt.settings.device)
        session = Session(rt.registry, rt.config, rt.cache, job.tracer, run_id=job.run_id)
        limiter = anyio.CapacityLimiter(job.concurrency)
        stats = EngineStats(self.name, workers=1)
        if job.count:  # models load here, booked as set-up, not in the first episode
            stats.setup_s = await session.setup()
        job.on_start()
        cpu0 = time.process_time()
        encodes_before = image_encodes(session) if job.count else None

        async def one(index: int, ex: Example, image: Image | str, token: object) -> None:
            try:
                await send.send(await evaluate_example(session, index, ex, image, job.protocol))
            finally:
                limiter.release_on_behalf_of(token)

        try:
            async with anyio.create_task_group() as tg:
                while True:
                    # Reading the data set and decoding run in a thread while the previous
                    # image's examples run.
                    group = await anyio.to_thread.run_sync(next, job.groups, None)
                    if group is None:
                        break
                    stats.images += 1
                    image = await anyio.to_thread.run_sync(load_example_image, group[0][1], job.perturb)
                    for index, ex in group:
                        token = object()
                        await limiter.acquire_on_behalf_of(token)
                        tg.start_soon(one, index, ex, image, token)
        finally:
            stats.cpu_s = time.process_time() - cpu0
            stats.computed = dict(session.invoker.computed)
            stats.image_encodes = encodes_since(session, encodes_before)
            stats.peak_cuda_memory_bytes = peak_cuda_memory(rt.settings.device)
        return stats

    async def aclose(self) -> None:
        """Nothing to release: the runtime belongs to the caller."""
