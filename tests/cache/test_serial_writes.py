"""The cache's own thread: queued writes nobody waits for, and reads that still see them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.tracing import Tracer
from cache.serial import SerialThread
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.offline.scenes import generate_scene
from tools.registry import ToolRegistry
from tools.types import Image


def _record(value: int) -> Any:
    return lambda: ({"x": np.array([value])}, {"value": value})


def test_calls_run_in_the_order_given_on_one_thread() -> None:
    thread = SerialThread("test-serial")
    seen: list[tuple[int, str]] = []

    def note(k: int) -> None:
        seen.append((k, threading.current_thread().name))

    futures = [thread.submit(note, k) for k in range(20)]
    thread.wait_idle()
    assert all(f.done() for f in futures)
    assert [k for k, _ in seen] == list(range(20))
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("test-serial")
    thread.shutdown()


def test_a_queued_write_is_read_back_in_this_process_and_survives_close(tmp_path: Path) -> None:
    gate = threading.Event()
    cache = ToolCache(tmp_path)
    cache.io.submit(gate.wait, 5)  # the cache's thread is busy: the write stays queued
    start = time.perf_counter()
    cache.set_later("k", _record(3))
    assert time.perf_counter() - start < 0.5  # nobody waits for it
    threading.Timer(0.2, gate.set).start()
    got = cache.get("k")  # waits for the queued write, then reads it
    assert got is not None and got[1]["value"] == 3
    cache.set_later("k2", _record(4))
    cache.close()  # finishes the queued write
    with ToolCache(tmp_path) as again:
        got = again.get("k2")
        assert got is not None and int(got[0]["x"][0]) == 4


def test_a_record_that_cannot_be_built_turns_the_cache_off_with_its_reason(tmp_path: Path) -> None:
    def broken() -> Any:
        raise ValueError("no layout for this output")

    with ToolCache(tmp_path) as cache:
        cache.set_later("bad", broken)
        cache.set_later("good", _record(1))  # after the first failure the cache is off
        assert "no layout for this output" in (cache.health()["degraded"] or "")
        assert cache.get("good") is None and cache.health()["errors"] == 1


def test_drain_waits_for_the_queued_writes_without_blocking_the_loop(tmp_path: Path) -> None:
    gate = threading.Event()

    async def go(cache: ToolCache) -> tuple[bool, list[str]]:
        cache.io.submit(gate.wait, 5)
        cache.set_later("k", _record(1))
        ticks: list[str] = []

        async def tick() -> None:
            await anyio.sleep(0.05)
            ticks.append("loop ran")
            gate.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await cache.drain()
        return gate.is_set(), ticks  # it returned only once the write behind the gate could run

    with ToolCache(tmp_path) as cache:
        assert anyio.run(go, cache) == (True, ["loop ran"])


def test_a_computed_tool_call_returns_before_its_cache_write_lands(tmp_path: Path) -> None:
    scene = generate_scene(0)
    ws = Workspace(Image.from_array(np.asarray(scene.image, np.uint8)), scene.objects[0].expressions[0])
    writing = threading.Event()
    release = threading.Event()

    with ToolCache(tmp_path) as cache:
        real_set = cache.set

        def slow_set(*args: Any) -> None:
            writing.set()
            release.wait(5)
            real_set(*args)

        cache.set = slow_set  # type: ignore[method-assign]
        invoker = Invoker(ToolRegistry(ToolSettings()), cache)
        ctx = CallContext(costs=CostBook(), log=Tracer(None).bind(sample_id="t"))
        out = anyio.run(lambda: invoker.call("region_propose", ws, {}, ctx))
        assert len(out) > 0 and writing.wait(5) and not release.is_set()  # returned mid-write
        release.set()
        assert len(cache.stored_keys()) == 1  # and the write landed after
