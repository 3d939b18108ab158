"""The SAM 3 tools on the tiny architecture: one encode per image, scores as a ranking,
the prompt tool's frame, precision in the cache keys."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
import torch
from helpers_sam3 import RED_BOX, scene, tiny_proposer, tiny_registry, tiny_settings

from agent.invoke import cache_key
from tools.base import Workspace
from tools.coords import Frame, View
from tools.prompting import PromptParams
from tools.sam3.propose import Sam3Proposals, Sam3Propose, Sam3ProposeParams
from tools.sam3.rank import Sam3Rank, Sam3RankParams, scores_ranking, scores_to_probs
from tools.types import Proposals

OPEN = Sam3ProposeParams(threshold=0.0)  # random weights score about 0.25: keep them all


def propose(tool: Sam3Propose, ws: Workspace, params: Sam3ProposeParams = OPEN) -> Sam3Proposals:
    out = anyio.run(tool, ws, params)
    tool.apply(ws, out)
    return out


def test_an_image_is_encoded_once_for_every_query_on_it() -> None:
    tool = tiny_proposer()
    first, second = scene(seed=0), scene(seed=1)
    outs = [
        propose(tool, Workspace(first, q), OPEN) for q in ("red box", "blue box", "the red box on the left")
    ]
    assert tool.encodes == 1
    assert [o.image_encoded for o in outs] == [True, False, False]
    assert [o.query for o in outs] == ["red box", "blue box", "the red box on the left"]
    propose(tool, Workspace(second, "red box"))
    assert tool.encodes == 2
    assert tool.engine().counters.text_encodes == 3  # "red box" was encoded once for both images
    assert propose(tool, Workspace(first, "a box")).image_encoded is False  # still kept: no encode
    assert tool.encodes == 2


def test_instances_are_sorted_scored_and_thresholded() -> None:
    tool = tiny_proposer()
    ws = Workspace(scene(), "red box")
    everything = anyio.run(tool, ws, Sam3ProposeParams(threshold=0.0, max_instances=200))
    scores = everything.scores
    assert 10 <= len(everything) <= 20  # the tiny model's 20 query slots, less those with an empty mask
    assert everything.masks.any(axis=(1, 2)).all()
    assert np.all(np.diff(scores) <= 0) and np.all((scores > 0) & (scores < 1))
    assert everything.masks.shape[1:] == ws.image.size
    assert 0.0 < everything.presence < 1.0
    cut = float(np.median(scores))
    kept = anyio.run(tool, ws, Sam3ProposeParams(threshold=cut))
    assert np.array_equal(kept.scores, scores[scores > cut])
    assert len(anyio.run(tool, ws, Sam3ProposeParams(threshold=0.0, max_instances=3))) == 3
    nothing = anyio.run(tool, ws, Sam3ProposeParams(threshold=1.0))
    assert len(nothing) == 0 and nothing.masks.shape == (0, *ws.image.size)  # an answer, not an error


def test_the_output_round_trips_through_the_cache_record() -> None:
    out = anyio.run(tiny_proposer(), Workspace(scene(), "red box"), OPEN)
    assert out.image_encoded and out.summary()["image"] == "encoded"
    arrays, meta = out.to_record()
    assert "image_encoded" not in meta  # a fact of the one computation, not of the output
    back = Sam3Proposals.from_record(arrays, meta)
    assert isinstance(back, Sam3Proposals) and back.query == "red box"
    assert back.presence == pytest.approx(out.presence) and np.array_equal(back.masks, out.masks)
    assert back.summary()["image"] == "cached" and back.summary()["query"] == "red box"
    old_record = Sam3Proposals.from_record(arrays, {**meta, "image_encoded": True})  # written before
    assert old_record.summary()["image"] == "cached"
    assert out.as_cached().summary()["image"] == "cached" and out.image_encoded  # a copy


def test_a_later_query_adds_only_instances_not_held_yet() -> None:
    tool = tiny_proposer()
    ws = Workspace(scene(), "red box")
    first = propose(tool, ws)
    assert ws.proposals is first
    held = len(ws.proposals)
    again = anyio.run(tool, ws, OPEN)  # the same query again: the same instances
    tool.apply(ws, again)
    assert len(ws.proposals) == held
    ws.set_ranking(scores_ranking(np.ones(held, np.float32) / held, "red box", ws.proposals.digest, "t"))
    other = propose(tool, ws, Sam3ProposeParams(query="blue box", threshold=0.0))
    assert ws.query == "blue box" and ws.history == ["red box", "blue box"]
    assert held <= len(ws.proposals) <= held + len(other)
    if len(ws.proposals) > held:  # new candidates: the old rankings no longer describe them
        assert ws.ranking is None


def test_scores_convert_to_probabilities_the_guards_can_read() -> None:
    assert scores_to_probs(np.array([0.9])).tolist() == pytest.approx([0.9])  # sure: conf 0.9, gap 0.9
    assert scores_to_probs(np.array([0.35])).tolist() == pytest.approx([0.35])  # unsure
    assert scores_to_probs(np.array([0.9, 0.9])).tolist() == pytest.approx([0.5, 0.5])  # two alike
    assert scores_to_probs(np.array([0.6, 0.3])).tolist() == pytest.approx([0.6, 0.3])  # sum < 1: as is
    ranking = scores_ranking(np.array([0.2, 0.9, 0.1], np.float32), "dog", "d", "sam3_rank")
    assert (
        ranking.top == 1
        and ranking.conf == pytest.approx(0.75)
        and ranking.gap == pytest.approx(0.5833, abs=1e-3)
    )
    assert ranking.scores.tolist() == pytest.approx([0.2, 0.9, 0.1])  # the raw scores are kept
    empty = scores_ranking(np.zeros(0, np.float32), "dog", "d", "sam3_rank")
    assert empty.conf == 0.0 and empty.gap == 0.0 and empty.top == -1


def test_sam3_rank_gives_each_instance_its_own_score_and_others_their_overlap() -> None:
    registry = tiny_registry()
    proposer, ranker = registry.get("sam3_propose"), registry.get("sam3_rank")
    assert isinstance(ranker, Sam3Rank) and ranker.proposer is proposer
    ws = Workspace(scene(), "red box")
    found = propose(proposer, ws)
    ranking = anyio.run(ranker, ws, Sam3RankParams(threshold=0.0))
    assert ranking.scores == pytest.approx(found.scores)  # an instance scores as itself
    assert ranking.probs == pytest.approx(scores_to_probs(found.scores))
    outside = np.zeros((1, *ws.image.size), dtype=bool)
    outside[0, :2, :2] = True  # a candidate SAM 3 did not find
    ws.add_proposals(Proposals.from_masks(outside, source="elsewhere"))
    mixed = anyio.run(ranker, ws, Sam3RankParams(threshold=0.0))
    assert len(mixed) == len(found) + 1 and mixed.scores[-1] < 0.05
    assert proposer.encodes == 1  # ranking reused the encoding and the detections


def test_the_prompt_tool_gives_the_tracker_the_box_in_sam3s_square_frame() -> None:
    registry = tiny_registry()
    tool = registry.get("sam3_prompt")
    proposer = registry.get("sam3_propose")
    ws = Workspace(scene(), "red box")
    propose(proposer, ws, Sam3ProposeParams(threshold=1.0))  # nothing found: the drawn mask is the first
    ws.set_view(View(Frame(320, 180, "view"), "pixels"))  # the VLM saw the image at twice its size
    seen: list[torch.Tensor] = []
    encoder = proposer.engine().model.tracker_model.prompt_encoder
    handle = encoder.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["input_boxes"].clone()), with_kwargs=True
    )
    try:
        box_in_view = [2 * v for v in RED_BOX]
        out = anyio.run(tool, ws, PromptParams(box=box_in_view))
    finally:
        handle.remove()
    tool.apply(ws, out)
    side = proposer.engine().side  # 224: x scales by 224/160, y by 224/90
    expected = [
        RED_BOX[0] * side / 160,
        RED_BOX[1] * side / 90,
        RED_BOX[2] * side / 160,
        RED_BOX[3] * side / 90,
    ]
    assert seen[0].shape == (1, 1, 4)
    assert np.abs(seen[0].reshape(4).numpy() - expected).max() < 1.0
    assert len(ws.proposals) == 1 and ws.proposals.origins.tolist() == ["sam3_prompt:box"]
    assert proposer.encodes == 1


@pytest.mark.parametrize("name", ["sam3_propose", "sam3_rank", "sam3_prompt"])
def test_precision_is_part_of_every_cache_key(name: str) -> None:
    ws = Workspace(scene(), "red box")
    ws.proposals = Proposals.from_masks(np.ones((1, *ws.image.size), dtype=bool), source="t")
    params = {"sam3_prompt": {"box": list(RED_BOX)}}.get(name, {})
    keys = set()
    for precision in ("fp32", "bf16", "fp16"):
        tool = tiny_registry(precision=precision).get(name)
        keys.add(cache_key(tool, ws, tool.Params.model_validate(params)))
        assert tool.fingerprint().endswith("" if precision == "fp32" else f":{precision}")
    assert len(keys) == 3


def test_bf16_runs_and_finds_what_fp32_finds() -> None:
    ws = Workspace(scene(), "red box")
    fp32 = anyio.run(tiny_proposer(), ws, OPEN)
    bf16 = anyio.run(tiny_proposer(precision="bf16"), ws, OPEN)
    assert len(bf16) == len(fp32) and bf16.masks.shape == fp32.masks.shape
    assert np.abs(np.sort(bf16.scores) - np.sort(fp32.scores)).max() < 0.02


@pytest.mark.slow
def test_compile_changes_speed_not_answers() -> None:
    ws = Workspace(scene(), "red box")
    plain = anyio.run(tiny_proposer(), ws, OPEN)
    compiled = anyio.run(Sam3Propose(tiny_settings(compile=True, compile_backend="aot_eager")), ws, OPEN)
    assert np.allclose(compiled.scores, plain.scores, atol=1e-5)
    assert compiled.masks.shape == plain.masks.shape
