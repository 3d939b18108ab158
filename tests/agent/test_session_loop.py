from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from helpers_fake_tools import StripesPropose, WordRank, make_registry

from agent.controllers import controller_names, get_controller
from agent.episode import EpisodeConfig, StopReason
from agent.loop_controller import run_loop
from agent.session import Session
from agent.tracing import Tracer
from cache import ToolCache
from tools.base import Workspace
from tools.errors import ConfigError
from tools.types import Image, Ranking

CFG = dict(proposer="stripes_propose", ranker="word_rank", refiner="synonym_refine")


@pytest.fixture
def image() -> Image:
    return Image.from_array(np.random.default_rng(1).integers(0, 255, (30, 20, 3), dtype=np.uint8))


def run(session: Session, image: Image, text: str, sid: str = "s"):
    return anyio.run(session.run, image, text, sid)


def test_oneshot_takes_top1(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))
    result = run(session, image, "the bottom stripe")
    assert result.ok and result.chosen == 2 and result.stop_reason == "oneshot"
    assert result.mask is not None and result.mask.shape == image.size
    assert result.mask[-1].all() and not result.mask[0].any()


def test_guard_stops_at_once_when_sure(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="loop", max_iter=3, **CFG))
    result = run(session, image, "top")
    assert result.stop_reason == "guard" and result.iterations == 0
    assert "synonym_refine" not in result.costs.tools


def test_loop_refines_until_sure(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="loop", max_iter=3, **CFG))
    oneshot = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))
    assert run(oneshot, image, "the upper one").conf < 0.5  # unknown word: flat ranking
    result = run(session, image, "the upper one")
    assert result.stop_reason == "guard" and result.iterations == 1
    assert result.queries == ["the upper one", "the top one"] and result.chosen == 0
    assert result.costs.calls("word_rank") == 2 and result.costs.calls("stripes_propose") == 1


def test_loop_stops_when_the_refiner_has_nothing_new(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="loop", max_iter=2, **CFG))
    result = run(session, image, "some stripe")
    assert result.stop_reason == "refiner_exhausted" and result.ok


def test_refiner_failure_falls_back_to_best_candidate(image: Image) -> None:
    registry = make_registry()
    registry.get("synonym_refine").fail = True  # type: ignore[attr-defined]
    session = Session(registry, EpisodeConfig(controller="loop", **CFG))
    result = run(session, image, "the upper one")
    assert result.stop_reason == "fallback" and result.chosen >= 0 and result.mask is not None


def test_second_run_served_from_disk_cache(image: Image, tmp_path: Path) -> None:
    StripesPropose.computes = 0
    for _ in range(2):
        with ToolCache(tmp_path) as cache:
            session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG), cache=cache)
            result = run(session, image, "middle")
    assert StripesPropose.computes == 1
    assert result.costs.tools["stripes_propose"].cache_hits == 1


def test_concurrent_expressions_of_one_image_propose_once(image: Image) -> None:
    StripesPropose.computes = 0
    session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))
    results = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for word in ("top", "middle", "bottom", "top one"):

                async def one(w: str = word) -> None:
                    results[w] = await session.run(image, w, w)

                tg.start_soon(one)

    anyio.run(main)
    assert StripesPropose.computes == 1
    assert [results[w].chosen for w in ("top", "middle", "bottom")] == [0, 1, 2]


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01"])
def test_empty_expression_is_a_failed_example_not_a_crash(image: Image, text: str) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))
    result = run(session, image, text)
    assert not result.ok and "empty" in (result.error or "") and result.stop_reason == "error"


class ShortRank(WordRank):
    """A broken ranker plugin: scores one candidate more than there are proposals."""

    name = "short_rank"

    async def __call__(self, ws: Workspace, params: Any) -> Ranking:
        scores = np.array([0.0] * len(ws.require_proposals()) + [5.0], np.float32)
        return Ranking.from_scores(scores, ws.query, params.temperature, "", self.name)


def test_ranking_that_does_not_index_the_proposals_is_a_failed_example(image: Image) -> None:
    registry = make_registry()
    registry.register("short_rank", ShortRank)
    session = Session(registry, EpisodeConfig(controller="oneshot", **{**CFG, "ranker": "short_rank"}))
    result = run(session, image, "the top stripe")
    assert not result.ok and result.stop_reason == "error" and result.mask is None
    assert "scored 4 candidates but there are 3 proposals" in (result.error or "")


def test_unknown_tool_fails_at_session_start() -> None:
    with pytest.raises(ConfigError, match="unknown tool 'nope'"):
        Session(make_registry(), EpisodeConfig(controller="oneshot", proposer="nope", ranker="word_rank"))


def test_bad_config_values_are_rejected() -> None:
    # The controller name is checked against the one registry when the session is built,
    # before any example runs.
    known = "oneshot, loop, ground, agent"
    with pytest.raises(ConfigError, match=f"unknown controller 'magic'; choose one of {known}"):
        Session(make_registry(), EpisodeConfig(controller="magic", **CFG))
    with pytest.raises(ConfigError, match="tau-conf"):
        EpisodeConfig(tau_conf=1.5)


def test_controllers_registry_names_every_controller() -> None:
    assert controller_names()[:4] == ["oneshot", "loop", "ground", "agent"]
    assert get_controller("loop").run is run_loop


def test_huge_image_is_downscaled_and_mask_mapped_back() -> None:
    big = Image.from_array(np.zeros((300, 120, 3), np.uint8))
    registry = make_registry()
    registry.settings = registry.settings.__class__(max_side=60)
    session = Session(registry, EpisodeConfig(controller="oneshot", **CFG))
    result = run(session, big, "bottom")
    assert result.mask is not None and result.mask.shape == (300, 120)
    assert result.mask[-1].all() and not result.mask[0].any()


def test_trace_has_one_event_per_tool_call_and_guard(image: Image, tmp_path: Path) -> None:
    with Tracer(tmp_path / "trace.jsonl", run_id="r1") as tracer:
        session = Session(make_registry(), EpisodeConfig(controller="loop", **CFG), tracer=tracer)
        run(session, image, "the upper one", "sample-7")
    events = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names.count("tool_call") == 4 and names.count("guard") == 2
    assert all(e["run_id"] == "r1" and e["sample_id"] == "sample-7" for e in events)
    calls = [e for e in events if e["event"] == "tool_call"]
    assert [c["tool"] for c in calls] == ["stripes_propose", "word_rank", "synonym_refine", "word_rank"]
    assert calls[1]["result"]["conf"] < calls[3]["result"]["conf"]


def test_unchanged_refinement_is_not_a_new_query(image: Image) -> None:
    session = Session(make_registry(), EpisodeConfig(controller="loop", max_iter=3, **CFG))
    result = run(session, image, "a stripe")
    assert result.queries == ["a stripe"] and result.stop_reason == "refiner_exhausted"


def test_episode_log_context_is_reset_after_the_episode(image: Image) -> None:
    from agent.tracing import CURRENT_LOG

    session = Session(make_registry(), EpisodeConfig(controller="oneshot", **CFG))

    async def main() -> object:
        await session.run(image, "top", "s")
        return CURRENT_LOG.get()

    assert anyio.run(main) is None


def test_stop_reason_is_one_type_written_as_plain_strings(image: Image, tmp_path: Path) -> None:
    with Tracer(tmp_path / "trace.jsonl", run_id="r") as tracer:
        session = Session(make_registry(), EpisodeConfig(controller="loop", **CFG), tracer=tracer)
        result = run(session, image, "top")
    assert result.stop_reason is StopReason.GUARD and result.stop_reason == "guard"
    assert json.loads(json.dumps(result.to_json()))["stop_reason"] == "guard"
    assert type(result.to_json()["stop_reason"]) is str
    end = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()][-1]
    assert end["event"] == "episode_end" and end["stop_reason"] == "guard"
