"""The local engine: one process, images decoded in turn, their examples run concurrently."""

from __future__ import annotations

import anyio
import anyio.to_thread

from agent.session import Session
from bench.engines.base import (
    EngineJob,
    EngineStats,
    RecordStream,
    peak_cuda_memory,
    reset_peak_cuda_memory,
)
from bench.evaluate import evaluate_example, load_example_image
from bench.examples import Example, group_by_image
from tools.types import Image


class LocalEngine:
    """Runs every episode in this process's event loop (an anyio task group).

    At most ``job.concurrency`` examples are in flight (a ``CapacityLimiter``); each image is
    decoded (and perturbed) once, in a thread, while the previous image's examples run.
    """

    name = "local"

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        rt = job.rt
        reset_peak_cuda_memory(rt.settings.device)
        session = Session(rt.registry, rt.config, rt.cache, job.tracer, run_id=job.run_id)
        index_of = {ex.example_id: i for i, ex in job.todo}
        limiter = anyio.CapacityLimiter(job.concurrency)
        stats = EngineStats(self.name, workers=1)
        if job.todo:  # models load here, booked as set-up, not in the first episode
            stats.setup_s = await session.setup()

        async def one(ex: Example, image: Image | str, token: object) -> None:
            try:
                await send.send(await evaluate_example(session, index_of[ex.example_id], ex, image))
            finally:
                limiter.release_on_behalf_of(token)

        try:
            async with anyio.create_task_group() as tg:
                for _image_id, group in group_by_image([ex for _, ex in job.todo]):
                    stats.images += 1
                    # Decoding runs in a thread while the previous image's examples run.
                    image = await anyio.to_thread.run_sync(load_example_image, group[0], job.perturb)
                    for ex in group:
                        token = object()
                        await limiter.acquire_on_behalf_of(token)
                        tg.start_soon(one, ex, image, token)
        finally:
            stats.computed = dict(session.invoker.computed)
            stats.peak_cuda_memory_bytes = peak_cuda_memory(rt.settings.device)
        return stats

    async def aclose(self) -> None:
        """Nothing to release: the runtime belongs to the caller."""
