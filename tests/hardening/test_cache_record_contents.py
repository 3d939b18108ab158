"""Items 1 and 6: a checksummed cache entry of the right type is checked against itself and
against the call before it is used: no inflation, no mask of another size than the image, no
NaN, no ranking of candidates that are not there. Each is a miss, counted and recomputed."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from helpers_chaos import chaos_row

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker
from agent.tracing import Tracer
from bench.chaos.cache_contents import (
    inflating_proposals,
    longer_ranking,
    nan_ranking,
    resized_proposals,
    untyped_rewrite,
)
from cache.codec import decode, encode
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.offline.scenes import generate_scene
from tools.output_fit import check_fits
from tools.registry import ToolRegistry
from tools.types import Image, Proposals, Ranking, Refinement


def _proposals() -> Proposals:
    masks = np.zeros((3, 20, 30), bool)
    masks[0, :10], masks[1, 10:], masks[2, :, :15] = True, True, True
    return Proposals.from_masks(masks, scores=np.array([0.9, 0.8, 0.7]), source="t")


def _through_codec(record: tuple[dict[str, np.ndarray], dict[str, Any]]) -> tuple[Any, Any]:
    return decode(encode(*record))


def test_a_stored_shape_the_bytes_cannot_back_is_refused_before_allocation() -> None:
    arrays, meta = _through_codec(inflating_proposals(*_proposals().to_record()))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="do not hold"):
            Proposals.from_record(arrays, meta)  # the old decoder built a 381 MiB mask here
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, m: (a, {**m, "shape": [3, 20.0, 30]}), "non-negative integers"),
        (lambda a, m: (a, {**m, "shape": [3, -20, 30]}), "non-negative integers"),
        (lambda a, m: ({**a, "boxes": a["boxes"] * np.nan}, m), "NaN or infinite"),
        (lambda a, m: ({**a, "scores": np.full(3, np.inf, np.float32)}, m), "NaN or infinite"),
        (lambda a, m: ({**a, "areas": a["areas"] + 1}, m), "areas differ"),
        (lambda a, m: (a, {**m, "digest": "0" * 64}), "digest"),
    ],
)
def test_a_proposals_record_must_be_consistent_in_itself(
    change: Callable[[Any, Any], Any], message: str
) -> None:
    arrays, meta = _through_codec(change(*_proposals().to_record()))
    with pytest.raises(ValueError, match=message):
        Proposals.from_record(arrays, meta)


def test_rankings_and_rewrites_must_hold_finite_typed_values() -> None:
    ranking = Ranking.from_scores(np.array([0.3, 0.2, 0.1]), "the dog", 0.1, "d")
    with pytest.raises(ValueError, match="NaN"):
        Ranking.from_record(*_through_codec(nan_ranking(*ranking.to_record())))
    arrays, meta = ranking.to_record()
    with pytest.raises(ValueError, match="distribution"):
        Ranking.from_record({**arrays, "probs": arrays["probs"] * 2}, meta)
    with pytest.raises(ValueError, match="temperature"):
        Ranking.from_record(arrays, {**meta, "temperature": float("nan")})
    rewrite = Refinement("the red dog", "colour", "rules")
    with pytest.raises(ValueError, match="query"):
        Refinement.from_record(*untyped_rewrite(*rewrite.to_record()))
    with pytest.raises(ValueError, match="usd"):
        Refinement.from_record({}, {**rewrite.to_record()[1], "usd": float("inf")})
    assert Ranking.from_record(*ranking.to_record()).query == "the dog"  # the honest ones decode


def _workspace() -> Workspace:
    scene = generate_scene(0)
    return Workspace(Image.from_array(np.asarray(scene.image, np.uint8)), scene.objects[0].expressions[0])


def _call(invoker: Invoker, name: str, ws: Workspace) -> Any:
    ctx = CallContext(costs=CostBook(), log=Tracer(None).bind(sample_id="t"))
    return anyio.run(lambda: invoker.call(name, ws, {}, ctx))


def _rewrite_only_entry(cache: ToolCache, change: Callable[[Any, Any], Any]) -> None:
    keys = cache.stored_keys()
    assert len(keys) == 1
    arrays, meta = cache.get(keys[0]) or ({}, {})
    cache.set_raw(keys[0], encode(*change(arrays, meta)))


@pytest.mark.parametrize("forgery", [resized_proposals, inflating_proposals])
def test_proposals_that_do_not_fit_the_image_are_recomputed(
    tmp_path: Path, forgery: Callable[..., Any]
) -> None:
    registry = ToolRegistry(ToolSettings())
    cache = ToolCache(tmp_path)
    ws = _workspace()
    first = _call(Invoker(registry, cache), "region_propose", ws)
    _rewrite_only_entry(cache, forgery)
    again = _call(Invoker(registry, cache), "region_propose", _workspace())  # fresh memory layer
    assert again.masks.shape[1:] == ws.image.size and np.array_equal(again.masks, first.masks)
    assert cache.corrupt == 1


@pytest.mark.parametrize("forgery", [nan_ranking, longer_ranking])
def test_rankings_that_do_not_fit_the_candidates_are_recomputed(
    tmp_path: Path, forgery: Callable[..., Any]
) -> None:
    registry = ToolRegistry(ToolSettings())
    ws = _workspace()
    _call(Invoker(registry), "region_propose", ws)
    cache = ToolCache(tmp_path)
    first = _call(Invoker(registry, cache), "attribute_rank", ws)
    _rewrite_only_entry(cache, forgery)
    again = _call(Invoker(registry, cache), "attribute_rank", ws)
    assert len(again) == len(ws.proposals or ()) and np.array_equal(again.probs, first.probs)
    assert np.isfinite(again.probs).all() and cache.corrupt == 1


def test_a_ranking_of_other_candidates_does_not_fit_the_workspace() -> None:
    proposals = _proposals()
    size = proposals.masks.shape[1:]
    other = Ranking.from_scores(np.array([0.1, 0.2, 0.3]), "q", 0.1, proposals_digest="f" * 64)
    with pytest.raises(ValueError, match="other candidates"):
        check_fits(size, proposals, other)
    with pytest.raises(ValueError, match="2 candidates"):
        check_fits(size, proposals, Ranking.from_scores(np.array([0.1, 0.2]), "q", 0.1))
    with pytest.raises(ValueError, match="for a"):
        check_fits((size[0] + 1, size[1]), None, proposals)
    check_fits(size, proposals, Ranking.from_scores(np.array([0.1, 0.2, 0.3]), "q", 0.1, proposals.digest))


@pytest.mark.slow  # a whole scorecard row (runs, child processes)
def test_forged_cache_contents_row_survives_at_the_first_run_s_memory() -> None:
    row = chaos_row("forged cache contents")
    assert row.survived, row.problems
    assert row.injected == row.detected == 5 and row.failed == 0
    assert row.details["second_rss_bytes"] <= row.details["first_rss_bytes"] + 150 * 2**20
