"""The run's VLM limiter actor (``--engine ray``): a caller cancelled while it waits gives its
ticket back whatever the order its calls arrive in, and a 429's pause reaches the actor before
the slot is freed. :class:`LimiterActor` is plain Python: most tests drive it directly, or
through a stand-in for its Ray handle whose calls take a round trip and, like Ray's, run on
when their caller is cancelled; one slow test uses a real Ray actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from agent.vlm import VLMClient, VLMConfig
from agent.vlm_limits import Permit, VLMLimits
from bench.doubles.scripted_server import ScriptedServer, Status, Text
from bench.engines.vlm_limiter import LimiterActor, RemoteLimiter

MESSAGES = [{"role": "user", "content": "hello"}]


class _Method:
    def __init__(self, fn: Callable[..., Awaitable[Any]], latency: float, tg: TaskGroup):
        self.fn, self.latency, self.tg = fn, latency, tg

    def remote(self, *args: Any) -> Awaitable[Any]:
        done, result = anyio.Event(), []

        async def run() -> None:  # in the handle's task group: the caller cannot cancel it
            await anyio.sleep(self.latency)  # the call's way to the actor
            result.append(await self.fn(*args))
            await anyio.sleep(self.latency)  # the answer's way back
            done.set()

        self.tg.start_soon(run)

        async def answer() -> Any:
            await done.wait()
            return result[0]

        return answer()


class RoundTripHandle:
    """``handle.method.remote(*args)`` on a local :class:`LimiterActor`, ``latency`` seconds
    each way; the actor's method runs to its end even when its caller is cancelled."""

    def __init__(self, actor: LimiterActor, latency: float, tg: TaskGroup):
        self._actor, self._latency, self._tg = actor, latency, tg

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self._actor, name), self._latency, self._tg)


def leftovers(actor: LimiterActor) -> list[Any]:
    """The actor's ticket books (tickets, each granted permit's ticket, waits, withdrawals):
    all empty once every caller is done."""
    granted = {permit_id: ticket for permit_id, (_, ticket) in actor._permits.items()}
    return [actor._tickets, granted, actor._waiting, actor._withdrawn]


def test_a_withdrawal_that_overtakes_its_acquire_grants_nothing() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1, rpm=1))

    async def main() -> None:
        await actor.withdraw("t")  # Ray does not order an async actor's calls: it came first
        assert await actor.acquire(10, "t") is None
        with anyio.fail_after(5):  # the slot and the minute's one request are still free
            assert await actor.acquire(10, "u") is not None
        stats = await actor.stats()
        assert (stats["requests"], stats["in_flight"]) == (1, 1)

    anyio.run(main)
    assert leftovers(actor) == [{"u": 1}, {1: "u"}, {}, set()]


def test_a_withdrawal_stops_a_waiting_acquire() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1))
    answers: list[int | None] = []

    async def main() -> None:
        held = await actor.acquire(10, "a")
        with anyio.fail_after(5):  # the withdrawn wait ends now, not when the slot is free
            async with anyio.create_task_group() as tg:

                async def wait_for_slot() -> None:
                    answers.append(await actor.acquire(10, "b"))

                tg.start_soon(wait_for_slot)
                await anyio.wait_all_tasks_blocked()
                await actor.withdraw("b")
        await actor.release(held, None)
        assert (await actor.stats())["in_flight"] == 0

    anyio.run(main)
    assert answers == [None] and leftovers(actor) == [{}, {}, {}, set()]


def test_a_slot_granted_to_a_caller_that_has_gone_is_given_back_unsent() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1, rpm=1))

    async def main() -> None:
        assert await actor.acquire(10, "a") is not None  # granted; its answer never reached the caller
        await actor.withdraw("a")
        with anyio.fail_after(5):  # the slot is free, and the request left the minute's window
            again = await actor.acquire(10, "b")
        assert again is not None and (await actor.stats())["in_flight"] == 1

    anyio.run(main)


def test_a_withdrawal_that_lands_as_the_slot_is_granted_gives_it_back() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1, rpm=1))
    grant = actor._limiter.acquire

    async def granted_then_withdrawn(tokens: int) -> Permit:
        permit = await grant(tokens)
        await actor.withdraw("a")  # between the grant and the acquire's own bookkeeping
        return permit

    actor._limiter.acquire = granted_then_withdrawn  # type: ignore[method-assign]

    async def main() -> None:
        assert await actor.acquire(10, "a") is None
        actor._limiter.acquire = grant  # type: ignore[method-assign]
        with anyio.fail_after(5):  # the slot is free, and the request left the minute's window
            assert await actor.acquire(10, "b") is not None

    anyio.run(main)
    assert leftovers(actor) == [{"b": 2}, {2: "b"}, {}, set()]


def test_a_caller_cancelled_while_it_waits_leaves_no_slot_held() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1))  # a lease of 300 s: a leak would show

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            remote = RemoteLimiter(RoundTripHandle(actor, 0.02, tg))
            held = await remote.acquire(10)
            with anyio.move_on_after(0.2):  # an episode's timeout while it waits for the slot
                await remote.acquire(10)
            await remote.release(held, None)
            with anyio.fail_after(5):
                again = await remote.acquire(10)
            await remote.release(again, None)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert leftovers(actor) == [{}, {}, {}, set()]


def test_a_429s_pause_reaches_the_actor_before_the_slot_is_freed() -> None:
    actor = LimiterActor(VLMLimits(max_concurrency=1))
    with ScriptedServer([Status(429, retry_after=0.3), Text("a"), Text("b")]) as srv:

        async def main() -> list[str]:
            async with anyio.create_task_group() as tg:
                remote = RemoteLimiter(RoundTripHandle(actor, 0.05, tg))
                config = VLMConfig(base_url=srv.base_url, api_key="k", timeout_s=5.0, max_retries=2)
                client = VLMClient(config, limiter=remote)
                contents: list[str] = []
                try:
                    async with anyio.create_task_group() as calls:
                        for _ in range(2):

                            async def one() -> None:
                                contents.append((await client.complete(MESSAGES)).content)

                            calls.start_soon(one)
                finally:
                    await client.aclose()
                tg.cancel_scope.cancel()
            return contents

        contents = anyio.run(main)
        times = [r.t for r in srv.requests]
    assert sorted(contents) == ["a", "b"] and len(times) == 3
    assert times[1] - times[0] >= 0.29  # the request behind the slot waited out the pause


@pytest.mark.slow
def test_a_real_ray_actor_takes_back_a_cancelled_callers_ticket(ray_cluster: None) -> None:
    import ray

    actor = ray.remote(LimiterActor).options(num_cpus=0, max_concurrency=100)
    handle = actor.remote(VLMLimits(max_concurrency=1))
    remote = RemoteLimiter(handle)

    async def main() -> dict[str, Any]:
        held = await remote.acquire(10)
        with anyio.move_on_after(1.0):
            await remote.acquire(10)  # cancelled while the actor holds it waiting
        await remote.release(held, None)
        with anyio.fail_after(30):  # a leaked permit would hold the slot for its 300 s lease
            again = await remote.acquire(10)
        stats: dict[str, Any] = await handle.stats.remote()
        await remote.release(again, None)
        return stats

    try:
        stats = anyio.run(main)
    finally:
        ray.kill(handle)
    assert (stats["requests"], stats["in_flight"]) == (2, 1)
