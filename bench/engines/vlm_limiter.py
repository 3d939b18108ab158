"""The run's one VLM limiter with ``--engine ray``: an actor every worker's requests go through.

Each worker's VLM client gets a :class:`RemoteLimiter` (the :class:`agent.vlm_limits.Limiter`
protocol over the actor's handle) in place of its own limiter, so ``--vlm-max-concurrency``,
``--vlm-rpm`` and ``--vlm-tpm`` hold for the whole cluster, however many workers. The actor
reserves no CPU. A worker that dies holding slots gives them back when their lease runs out.

A request cancelled while it waits for a slot (an episode's timeout, a failing task group) does
not cancel the actor's call: Ray runs it on, and would grant a slot nobody releases until its
lease ran out. So each acquire carries a ticket, and a cancelled caller withdraws it
(:meth:`LimiterActor.withdraw`): the actor stops the wait, or gives back the slot it granted.
This module does not import Ray: :mod:`bench.engines.ray_engine` makes the actor.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import anyio

from agent.vlm_limits import Permit, VLMLimiter, VLMLimits

WITHDRAW_TIMEOUT_S = 10.0  # longest a cancelled caller waits for the actor to take its ticket back


class LimiterActor:
    """A Ray actor's state: one :class:`VLMLimiter` on the actor's event loop."""

    def __init__(self, limits: VLMLimits):
        self._limiter = VLMLimiter(limits)
        self._permits: dict[int, tuple[Permit, str | None]] = {}  # granted: its ticket, if any
        self._tickets: dict[str, int] = {}  # ticket -> permit id granted to it, until released
        self._waiting: dict[str, anyio.CancelScope] = {}  # ticket -> its wait for a slot
        self._withdrawn: set[str] = set()  # tickets withdrawn before their acquire ended

    async def acquire(self, tokens: int, ticket: str | None = None) -> int | None:
        """Wait until a request may go; its permit id (``None``: the ticket was withdrawn)."""
        permit = None
        scope = anyio.CancelScope()
        if ticket is not None:
            if ticket in self._withdrawn:  # the withdrawal overtook the acquire
                self._withdrawn.discard(ticket)
                return None
            self._waiting[ticket] = scope
        try:
            with scope:
                permit = await self._limiter.acquire(tokens)
        finally:
            if ticket is not None:
                self._waiting.pop(ticket, None)
        if ticket is not None and ticket in self._withdrawn:
            self._withdrawn.discard(ticket)
            if permit is not None:  # granted just as it was withdrawn: never sent
                await self._limiter.release(permit, None, reached=False)
            return None
        assert permit is not None  # only a withdrawal cancels the scope
        self._permits[permit.id] = (permit, ticket)
        if ticket is not None:
            self._tickets[ticket] = permit.id
        return permit.id

    async def withdraw(self, ticket: str) -> None:
        """The caller of ``acquire(..., ticket)`` has gone: stop its wait, or give back its slot
        (the request was never sent, so it leaves the windows too)."""
        permit_id = self._tickets.pop(ticket, None)
        if permit_id is not None:
            await self.release(permit_id, None, reached=False)
            return
        self._withdrawn.add(ticket)
        scope = self._waiting.get(ticket)
        if scope is not None:
            scope.cancel()

    async def release(self, permit_id: int, tokens: int | None, reached: bool = True) -> None:
        granted = self._permits.pop(permit_id, None)
        if granted is not None:
            permit, ticket = granted
            if ticket is not None:
                self._tickets.pop(ticket, None)
            await self._limiter.release(permit, tokens, reached)

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
        ticket = uuid.uuid4().hex
        try:
            permit_id = await self.handle.acquire.remote(tokens, ticket)
        except anyio.get_cancelled_exc_class():
            # The actor's call runs on: take the ticket back, or its slot stays held until its
            # lease ends. A dead actor has nothing to take back; the cancellation goes on.
            shield, timeout = anyio.CancelScope(shield=True), anyio.move_on_after(WITHDRAW_TIMEOUT_S)
            with shield, timeout, contextlib.suppress(Exception):
                await self.handle.withdraw.remote(ticket)
            raise
        return Permit(permit_id, time.monotonic() - asked)

    async def release(self, permit: Permit, tokens: int | None, reached: bool = True) -> None:
        await self.handle.release.remote(permit.id, tokens, reached)

    async def pause(self, seconds: float) -> None:
        await self.handle.pause.remote(seconds)
