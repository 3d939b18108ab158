"""Calls on one VLM client at the same time, as concurrent examples make them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from agent.vlm import VLMClient


def run_together(client: VLMClient, call: Callable[[], Awaitable[object]], n: int) -> None:
    """Start ``call`` ``n`` times at once on one event loop, wait for all, then close ``client``."""

    async def main() -> None:
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(call)
        finally:
            await client.aclose()

    anyio.run(main)
