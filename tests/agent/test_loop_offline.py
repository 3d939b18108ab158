"""The closed loop measured without weights: region_propose + attribute_rank + rules refiner.

Paraphrased expressions ("the crimson disc near the left edge") share few words with the
attribute ranker's vocabulary, so one-shot ranking is unsure and often wrong; the loop
rewrites them into canonical words and re-ranks. Measured on 30 scenes (seed 0), one
paraphrase per object: one-shot mIoU 0.51, loop 0.96; on direct expressions both 0.97.
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

from agent.episode import EpisodeConfig
from agent.session import Session
from cache import ToolCache
from tools.base import normalise_query
from tools.offline.scenes import generate_scenes
from tools.registry import ToolRegistry
from tools.types import Image

TOOLS: dict[str, Any] = dict(proposer="region_propose", ranker="attribute_rank", refiner="refine_query")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def evaluate(controller: str, kind: str, n_scenes: int, cache: ToolCache | None = None):
    """Mean IoU, the results, and the session's compute counts over one expression per object."""
    session = Session(ToolRegistry(), EpisodeConfig(controller=controller, **TOOLS), cache=cache)
    scores, results = [], []

    async def go() -> None:
        for scene in generate_scenes(n_scenes, seed=0):
            image = Image.from_array(scene.image)
            for obj in scene.objects:
                expressions = obj.expressions_of(kind)
                if not expressions:
                    continue
                result = await session.run(image, expressions[0], f"{scene.scene_id}/{obj.object_id}")
                assert result.ok and result.mask is not None, result.error
                scores.append(_iou(result.mask, obj.mask))
                results.append(result)

    anyio.run(go)
    return float(np.mean(scores)), results, dict(session.invoker.computed)


@pytest.fixture(scope="module")
def paraphrased(tmp_path_factory: pytest.TempPathFactory):
    # One disk cache for both runs: the loop reuses the one-shot run's proposals and rankings.
    cache = ToolCache(tmp_path_factory.mktemp("loop-offline-cache"))
    return {c: evaluate(c, "paraphrase", 30, cache) for c in ("oneshot", "loop")}


@pytest.mark.slow
def test_loop_beats_oneshot_on_paraphrases(paraphrased) -> None:
    oneshot, first, oneshot_computed = paraphrased["oneshot"]
    loop, results, computed = paraphrased["loop"]
    assert loop >= oneshot + 0.25 and loop >= 0.8
    # Proposals are made once per image and reused by every expression ...
    assert oneshot_computed == {"region_propose": 30, "attribute_rank": len(first)}
    # ... and, from the disk cache, by the second run; only re-ranks of new queries compute
    # (two expressions of one image may be refined into the same query: one computation).
    assert "region_propose" not in computed
    assert 0 < computed["attribute_rank"] <= sum(r.iterations for r in results)


@pytest.mark.slow
def test_loop_refines_unsure_episodes_into_canonical_words(paraphrased) -> None:
    _, results, _ = paraphrased["loop"]
    refined = [r for r in results if r.iterations > 0]
    assert len(refined) >= len(results) // 3
    assert all(len(r.queries) == r.iterations + 1 for r in refined)
    assert all(r.stop_reason in ("guard", "max_iter", "refiner_exhausted") for r in results)
    assert sum(r.stop_reason == "guard" for r in refined) >= 0.7 * len(refined)
    # Every refine call is a round, except one that returned no new query: it ends the loop
    # with refiner_exhausted; no query is ranked twice.
    for r in results:
        stalled = r.costs.calls("refine_query") - r.iterations
        assert stalled in (0, 1) and (stalled == 0) == (r.stop_reason != "refiner_exhausted")
        assert len({normalise_query(q) for q in r.queries}) == len(r.queries)
    sample = next(r for r in refined if "crimson" in r.expression or "azure" in r.expression)
    assert ("red" if "crimson" in sample.expression else "blue") in sample.queries[1]


@pytest.mark.slow
def test_loop_keeps_one_shot_quality_on_direct_expressions() -> None:
    oneshot, _, _ = evaluate("oneshot", "direct", 10)
    loop, results, _ = evaluate("loop", "direct", 10)
    assert loop >= oneshot - 0.02 and loop >= 0.85
    # Clear expressions pass the guard at once: no refinement spent on them.
    assert np.mean([r.iterations == 0 for r in results]) >= 0.9


def test_a_ranking_that_cannot_tell_candidates_apart_says_so() -> None:
    """A ranker that knows no word of the query scores every candidate alike: the pick is the
    first index, and the result must say it is arbitrary rather than look like a choice."""
    session = Session(ToolRegistry(), EpisodeConfig(controller="oneshot", **TOOLS))
    scene = generate_scenes(1, seed=0)[0]
    image = Image.from_array(scene.image)

    async def go() -> tuple[Any, Any]:
        unknown = await session.run(image, "zqx vorp", "s/unknown")
        known = await session.run(image, scene.objects[0].expressions_of("direct")[0], "s/known")
        return unknown, known

    unknown, known = anyio.run(go)
    assert unknown.ok and any("the choice is arbitrary" in n for n in unknown.notes), unknown.notes
    assert known.ok and not any("arbitrary" in n for n in known.notes), known.notes
