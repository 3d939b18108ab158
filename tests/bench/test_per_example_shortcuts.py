"""Shortcuts that cut per-example CPU give what the long way gives: the nesting bound settled by
a bracket count, the region proposer's padding, and ranking candidates' RLEs kept across
episodes by their (proposals digest, index) key."""

from __future__ import annotations

import numpy as np
import pytest

from agent.rank_steps import RankedCandidate, RankSteps
from bench import evaluate
from bench.evaluate import candidate_rle, rank_steps_json
from bench.rle import decode_rle, encode_rle
from tools.offline.region_propose import _pad_edge, _pad_zero
from tools.safe_json import JSONLimitError, check_bounds, nesting_depth
from tools.types import Proposals, Ranking


@pytest.mark.parametrize(
    "text",
    ["[]" * 100, '{"a": [' + ",".join(["{}"] * 80) + "]}", '"' + "[" * 100 + '"', "[" * 64 + "]" * 64 + "[]"],
)
def test_many_brackets_that_nest_shallowly_pass(text: str) -> None:
    assert nesting_depth(text) <= 64 < text.count("[") + text.count("{")  # the count cannot settle it
    check_bounds(text, max_chars=10_000)
    check_bounds(text.encode(), max_chars=10_000)


@pytest.mark.parametrize("text", ["[" * 65, "{" * 40 + "[" * 25, "é" + "[" * 65 + "]" * 65])
def test_nesting_over_the_limit_is_still_refused(text: str) -> None:
    with pytest.raises(JSONLimitError, match="nested 65 levels deep"):
        check_bounds(text, max_chars=10_000)
    with pytest.raises(JSONLimitError, match="nested 65 levels deep"):
        check_bounds(text.encode(), max_chars=10_000)


def test_few_brackets_pass_and_the_length_cap_still_applies() -> None:
    check_bounds('{"box": [1, 2, 3, 4]}', max_chars=100)
    check_bounds("no json at all", max_chars=100, max_depth=0)
    with pytest.raises(JSONLimitError, match="over the limit of 0"):
        check_bounds("[1]", max_chars=100, max_depth=0)
    with pytest.raises(JSONLimitError, match="characters"):
        check_bounds("[1]" * 50, max_chars=100)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (24, 5)])
def test_the_proposers_padding_is_numpys(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    mask = rng.random(shape) > 0.5
    pixels = rng.random((*shape, 3)) * 255
    assert np.array_equal(_pad_zero(mask), np.pad(mask, 1))
    assert _pad_zero(mask).dtype == mask.dtype
    edge = np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")
    assert np.array_equal(_pad_edge(pixels), edge) and _pad_edge(pixels).dtype == edge.dtype


def _candidates(seed: int, size: tuple[int, int] = (12, 16)) -> tuple[Proposals, Ranking]:
    rng = np.random.default_rng(seed)
    masks = rng.random((5, *size)) > 0.6
    props = Proposals.from_masks(masks, scores=np.linspace(1, 0.5, 5, dtype=np.float32), source="t")
    return props, Ranking.from_scores(rng.random(5).astype(np.float32), "q", 0.5, props.digest)


def test_candidate_rles_are_kept_by_key_and_match_a_fresh_encoding() -> None:
    evaluate._RLE_MEMO.clear()
    props, ranking = _candidates(1)
    steps = RankSteps()
    steps.capture(1, ranking, props)
    first = rank_steps_json(steps.finish((24, 32)))  # resized to the original image's size
    assert len(evaluate._RLE_MEMO) == 4  # the top 4, each encoded once
    again = rank_steps_json(steps.finish((24, 32)))  # another episode of the same image
    assert again == first
    for step in first:
        for cand in step["candidates"]:
            mask = decode_rle(cand["mask"])
            assert mask.shape == (24, 32) and cand["mask"] == encode_rle(mask)
    # The same candidates at another size are another entry, encoded at that size.
    other = rank_steps_json(steps.finish((12, 16)))
    assert [c["mask"]["size"] for c in other[0]["candidates"]] == [[12, 16]] * 4
    assert other[0]["candidates"][0]["mask"] == encode_rle(props.masks[int(ranking.order[0])])


def test_a_records_rle_is_its_own_copy() -> None:
    evaluate._RLE_MEMO.clear()
    mask = np.eye(6, dtype=bool)
    cand = RankedCandidate(0, 1.0, "t", mask, ("digest", 0))
    rle = candidate_rle(cand)
    rle["size"].append(99)
    rle["counts"] = "changed"
    assert candidate_rle(cand) == encode_rle(mask)


def test_candidates_without_a_key_are_encoded_each_time() -> None:
    evaluate._RLE_MEMO.clear()
    a, b = np.eye(4, dtype=bool), np.ones((4, 4), dtype=bool)
    assert candidate_rle(RankedCandidate(0, 1.0, "t", a)) == encode_rle(a)
    assert candidate_rle(RankedCandidate(0, 1.0, "t", b)) == encode_rle(b)  # same index, other mask
    assert len(evaluate._RLE_MEMO) == 0
