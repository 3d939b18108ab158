"""The run's one VLM limiter with ``--engine ray``: an actor every worker's requests go through.

Each worker's VLM client gets a :class:`RemoteLimiter` (the :class:`agent.vlm_limits.Limiter`
protocol over the actor's handle) in place of its own limiter, so ``--vlm-max-concurrency``,
``--vlm-rpm`` and ``--vlm-tpm`` hold for the whole cluster, however many workers. The actor
reserves no CPU. A worker that dies holding slots gives them back when their lease runs out.
This module does not import Ray: :mod:`bench.engines.ray_engine` makes the actor.
"""

from __future__ import annotations

import time
from typing import Any

from agent.vlm_limits import Permit, VLMLimiter, VLMLimits


class LimiterActor:
    """A Ray actor's state: one :class:`VLMLimiter` on the actor's event loop."""

    def __init__(self, limits: VLMLimits):
        self._limiter = VLMLimiter(limits)
        self._permits: dict[int, Permit] = {}

    async def acquire(self, tokens: int) -> int:
        """Wait until a request may go; its permit id."""
        permit = await self._limiter.acquire(tokens)
        self._permits[permit.id] = permit
        return permit.id

    async def release(self, permit_id: int, tokens: int | None) -> None:
        permit = self._permits.pop(permit_id, None)
        if permit is not None:
            await self._limiter.release(permit, tokens)

    async def pause(self, seconds: float) -> None:
        await self._limiter.pause(seconds)

    async def stats(self) -> dict[str, Any]:
        return self._limiter.stats()


class RemoteLimiter:
    """:class:`agent.vlm_limits.Limiter` through a :class:`LimiterActor`'s handle (picklable)."""

    def __init__(self, handle: Any):
        self.handle = handle

    async def acquire(self, tokens: int) -> Permit:
        asked = time.monotonic()  # the wait as this worker saw it, the round trip included
        permit_id = await self.handle.acquire.remote(tokens)
        return Permit(permit_id, time.monotonic() - asked)

    async def release(self, permit: Permit, tokens: int | None) -> None:
        await self.handle.release.remote(permit.id, tokens)

    async def pause(self, seconds: float) -> None:
        await self.handle.pause.remote(seconds)
