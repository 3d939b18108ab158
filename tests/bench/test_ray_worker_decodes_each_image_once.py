"""A Ray worker's image cache: the driver sends an image group one example per call, and the
worker decodes the image once for them (:class:`bench.engines.ray_worker.ImageCache`), keeping
only a few released images."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio

from bench.engines.ray_worker import ImageCache
from tools.errors import RefsegError


def counted(name: str, loads: list[str]) -> Any:
    """An example whose image load is recorded in ``loads`` (the image is its name)."""

    def load_image() -> str:
        loads.append(name)
        return name

    return SimpleNamespace(load_image=load_image)


def test_a_worker_decodes_an_image_once_for_calls_that_overlap_and_right_after_each_other() -> None:
    loads: list[str] = []
    cache = ImageCache(keep=2)
    seen: list[Any] = []

    async def call(key: int, name: str) -> None:
        async with cache.hold(key, counted(name, loads), "clean") as image:
            seen.append(image)
            await anyio.sleep(0.01)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call, 0, "a")
        await call(0, "a")  # released, then asked again: kept
        await call(1, "b")
        await call(2, "c")  # keep=2: "b" and "c" stay, "a" goes
        await call(1, "b")
        await call(0, "a")

    anyio.run(main)
    assert loads == ["a", "b", "c", "a"] and cache.decodes == 4
    assert seen == ["a"] * 6 + ["b", "c", "b", "a"]


def test_the_cache_keeps_at_most_keep_released_images() -> None:
    loads: list[str] = []
    cache = ImageCache(keep=3)

    async def main() -> None:
        for round_ in range(2):
            for key in range(6):  # six images, three kept: the second round decodes all again
                async with cache.hold(key, counted(f"{key}", loads), "clean"):
                    pass
            assert len(loads) == 6 * (round_ + 1)
        for key in (3, 4, 5):  # the last three released are still there
            async with cache.hold(key, counted(f"{key}", loads), "clean"):
                pass

    anyio.run(main)
    assert len(loads) == 12 and cache.decodes == 12


def test_an_image_that_cannot_be_read_fails_every_overlapping_call_with_one_read() -> None:
    reads: list[int] = []

    def unreadable() -> str:
        reads.append(1)
        raise RefsegError("cannot read image x.jpg")

    cache = ImageCache()
    got: list[Any] = []

    async def call() -> None:
        async with cache.hold(7, SimpleNamespace(load_image=unreadable), "clean") as image:
            got.append(image)
            await anyio.sleep(0.01)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call)

    anyio.run(main)
    assert reads == [1] and got == ["cannot read image x.jpg"] * 3
