"""tools.base: the per-loop device limiter behind run_on_device."""

from __future__ import annotations

import gc

import anyio

from tools import base
from tools.base import device_limiter, run_on_device


def test_one_limiter_per_device_per_loop_and_none_outlives_its_loop() -> None:
    async def use() -> tuple[int, bool, bool]:
        value = await run_on_device("cpu", lambda: 7)
        same = device_limiter("cpu") is device_limiter("cpu:0")
        other = device_limiter("cpu") is not device_limiter("meta")
        return value, same, other

    for _ in range(3):
        assert anyio.run(use) == (7, True, True)
    gc.collect()
    # A finished loop's limiters go with it (a later loop may even reuse its id()).
    assert len(base._limiters) == 0
