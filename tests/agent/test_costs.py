"""Cost records: computed / joined / cached calls, compute vs wait seconds, cold cost, set-up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from helpers_fake_tools import StripesPropose, make_registry

from agent.costs import CostBook, ToolCost
from agent.episode import EpisodeConfig, EpisodeResult
from agent.session import Session
from cache import ToolCache
from cache.store import COST_META
from tools.base import Workspace
from tools.device import book_wait
from tools.types import Image, Proposals

CFG = dict(proposer="stripes_propose", ranker="word_rank", refiner="synonym_refine")


@pytest.fixture
def image() -> Image:
    return Image.from_array(np.random.default_rng(2).integers(0, 255, (30, 20, 3), dtype=np.uint8))


def run_together(session: Session, image: Image, words: list[str]) -> list[EpisodeResult]:
    results: list[EpisodeResult] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for word in words:

                async def one(w: str = word) -> None:
                    results.append(await session.run(image, w, w))

                tg.start_soon(one)

    anyio.run(main)
    return results


def total(results: list[EpisodeResult], tool: str) -> ToolCost:
    book = CostBook()
    for r in results:
        book.merge(r.costs)
    return book.tools[tool]


def test_joined_calls_book_their_wait_not_the_compute(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))
    results = run_together(session, image, ["top", "middle", "bottom", "top one"])
    propose = total(results, "stripes_propose")
    assert (propose.calls, propose.computed, propose.joined, propose.cache_hits) == (4, 1, 3, 0)
    assert 0.01 <= propose.seconds < 0.5  # the one computation (its 10 ms sleep), once
    assert propose.wait_seconds > 0  # the three others waited on it ...
    assert propose.cold_seconds == pytest.approx(propose.seconds)  # ... and cost nothing more cold
    # The same work alone books the same compute seconds.
    alone = total(run_together(Session(make_registry(), session.config), image, ["top"]), "stripes_propose")
    assert (alone.calls, alone.computed, alone.joined) == (1, 1, 0) and alone.wait_seconds == 0


def test_a_hit_books_the_cold_cost_stored_with_the_record(image: Image, tmp_path: Path) -> None:
    config = EpisodeConfig(controller="oneshot", **CFG)
    with ToolCache(tmp_path) as cache:
        (cold,) = run_together(Session(make_registry(), config, cache=cache), image, ["top"])
    with ToolCache(tmp_path) as cache:
        warm = run_together(Session(make_registry(), config, cache=cache), image, ["top", "top"])
    first = cold.costs.tools["stripes_propose"]
    again = total(warm, "stripes_propose")
    assert again.computed == 0 and again.disk_hits == 1 and again.cache_hits == 2 and again.seconds == 0
    # From an empty cache this run would compute the proposals once: their cost, booked once.
    assert again.cold_seconds == pytest.approx(first.seconds, abs=1e-6) and again.cold_unknown == 0
    assert again.cold_seconds > 0


def test_a_record_without_a_stored_cost_is_unknown_not_zero(image: Image, tmp_path: Path) -> None:
    config = EpisodeConfig(controller="oneshot", **CFG)
    with ToolCache(tmp_path) as cache:
        run_together(Session(make_registry(), config, cache=cache), image, ["top"])
        for key in cache.stored_keys():  # as an older version wrote them
            arrays, meta = cache.get(key)  # type: ignore[misc]
            meta.pop(COST_META)
            cache.set(key, arrays, meta)
    with ToolCache(tmp_path) as cache:
        (warm,) = run_together(Session(make_registry(), config, cache=cache), image, ["top"])
    propose = warm.costs.tools["stripes_propose"]
    assert propose.disk_hits == 1 and propose.cold_unknown == 1 and propose.cold_seconds == 0


class HeldBackPropose(StripesPropose):
    """A tool whose request waits 0.2 s on the VLM's limits, and books it as such."""

    name = "stripes_propose"

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        await anyio.sleep(0.2)
        book_wait(0.2)
        return await super().__call__(ws, params)


def test_vlm_waits_are_booked_apart_from_waits_on_an_identical_call(image: Image) -> None:
    registry = make_registry()
    registry.register("stripes_propose", HeldBackPropose)
    session = Session(registry, EpisodeConfig(controller="oneshot", **CFG))
    propose = total(run_together(session, image, ["top", "middle", "bottom"]), "stripes_propose")
    assert (propose.computed, propose.joined) == (1, 2)
    assert propose.vlm_wait_seconds == pytest.approx(0.2)  # the one request, once
    assert propose.wait_seconds > propose.vlm_wait_seconds  # + the two joined calls' waits
    assert propose.as_dict()["vlm_wait_seconds"] == pytest.approx(0.2)
    fresh = make_registry()
    fresh.register("stripes_propose", HeldBackPropose)
    session = Session(fresh, EpisodeConfig(controller="oneshot", **CFG))
    alone = total(run_together(session, image, ["top"]), "stripes_propose")
    assert alone.wait_seconds == alone.vlm_wait_seconds == pytest.approx(0.2)  # no join: all VLM
    assert alone.seconds < 0.15  # the booked wait is not compute (the 10 ms stripes are)


def test_older_cost_records_read_with_zero_new_fields() -> None:
    book = CostBook.from_dict({"t": {"calls": 2, "seconds": 1.5, "cache_hits": 1, "errors": 0}})
    cost = book.tools["t"]
    assert (cost.calls, cost.cache_hits, cost.computed, cost.cold_seconds) == (2, 1, 0, 0.0)


class LazyPropose(StripesPropose):
    """Loads a 'model' on first use (0.3 s) unless set up before."""

    name = "stripes_propose"
    loaded = False

    def setup(self) -> None:
        time.sleep(0.3)
        self.loaded = True

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        if not self.loaded:
            self.setup()
        return await super().__call__(ws, params)


def test_start_up_is_run_set_up_not_the_first_episode(image: Image) -> None:
    registry = make_registry()
    registry.register("stripes_propose", LazyPropose)
    session = Session(registry, EpisodeConfig(controller="oneshot", **CFG))
    assert anyio.run(session.setup) >= 0.3
    (first,) = run_together(session, image, ["top"])
    assert first.seconds < 0.25 and first.costs.tools["stripes_propose"].seconds < 0.25
