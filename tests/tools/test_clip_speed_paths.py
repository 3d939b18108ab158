"""The GPU path of clip_rank (precision, compile, injected model), checked on CPU.

Tolerances (tiny CLIP, random weights; scores are cosine similarities):
- fp16 (autocast): |score - fp32 score| <= 0.001 (measured: 0.0002).
- bf16 (autocast): <= 0.01 (measured: 0.003). Random weights give candidates nearly equal
  scores, so the order may change under bf16; what is bounded is the score itself.
- torch.compile: the same float32 math, scores within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_clip import tiny_clip_settings, workspace

from tools.clip_loading import load_clip, register_tiny_clip
from tools.clip_rank import IMAGE_CHUNK, ClipRank
from tools.types import Proposals

QUERY = "a photo of the red box"


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 0.001), ("bf16", 0.01)])
@pytest.mark.parametrize("mode", ["crop", "blur"])
def test_reduced_precision_scores_match_fp32(precision: str, tolerance: float, mode: str) -> None:
    ws = workspace()
    ref = ClipRank(tiny_clip_settings()).scores(ws.image, ws.proposals, mode, QUERY)
    out = ClipRank(tiny_clip_settings(precision=precision)).scores(ws.image, ws.proposals, mode, QUERY)
    assert out.dtype == np.float32
    diff = np.abs(out - ref).max()
    assert 0 < diff <= tolerance, diff  # autocast did run, and stayed within the tolerance


def test_precision_is_part_of_the_fingerprint() -> None:
    fp32 = ClipRank(tiny_clip_settings()).fingerprint()
    assert fp32 == f"random:{register_tiny_clip()}:seed0"  # unchanged: old cache entries stay valid
    assert ClipRank(tiny_clip_settings(precision="bf16")).fingerprint() == fp32 + ":bf16"
    assert ClipRank(tiny_clip_settings(precision="fp16")).fingerprint() == fp32 + ":fp16"
    assert ClipRank(tiny_clip_settings(compile=True)).fingerprint() == fp32


def test_an_injected_model_is_used_kept_and_fingerprinted_by_its_weights() -> None:
    bundle = load_clip(register_tiny_clip(), weights="random", seed=3)
    tool = ClipRank(tiny_clip_settings(seed=0), bundle=bundle)
    assert tool.bundle() is bundle
    assert tool.fingerprint().startswith("module:")
    other = ClipRank(tiny_clip_settings(), bundle=load_clip(register_tiny_clip(), weights="random", seed=4))
    assert other.fingerprint() != tool.fingerprint()
    ws = workspace()
    seeded = ClipRank(tiny_clip_settings(seed=3)).scores(ws.image, ws.proposals, "crop", QUERY)
    np.testing.assert_array_equal(tool.scores(ws.image, ws.proposals, "crop", QUERY), seeded)
    tool.close()
    assert tool.bundle() is bundle  # an injected model is not dropped


def test_all_candidates_up_to_the_chunk_go_through_one_forward() -> None:
    ws = workspace()
    h, w = ws.image.size
    rng = np.random.default_rng(0)
    masks = np.zeros((IMAGE_CHUNK, h, w), dtype=bool)
    corners = np.stack([rng.integers(0, h - 8, IMAGE_CHUNK), rng.integers(0, w - 8, IMAGE_CHUNK)], axis=1)
    for i, (y, x) in enumerate(corners):
        masks[i, y : y + 8, x : x + 8] = True
    tool = ClipRank(tiny_clip_settings())
    scores = tool.scores(ws.image, Proposals.from_masks(masks), "crop", QUERY)
    assert scores.shape == (IMAGE_CHUNK,) and IMAGE_CHUNK >= 256
    assert (tool.image_forwards, tool.text_forwards, tool.crops_encoded) == (1, 1, IMAGE_CHUNK)


@pytest.mark.slow
def test_compiled_towers_give_the_same_scores() -> None:
    """~4 s: Dynamo traces both towers; ``aot_eager`` skips code generation (see the SAM test)."""
    ws = workspace()
    ref = ClipRank(tiny_clip_settings()).scores(ws.image, ws.proposals, "crop", QUERY)
    tool = ClipRank(tiny_clip_settings(compile=True, compile_backend="aot_eager"))
    out = tool.scores(ws.image, ws.proposals, "crop", QUERY)
    assert tool._towers is not None and all(hasattr(t, "_torchdynamo_orig_callable") for t in tool._towers)
    np.testing.assert_allclose(out, ref, atol=1e-5)
