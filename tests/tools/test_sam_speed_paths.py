"""The GPU path of sam_propose, checked on CPU against fp32 and the official generator.

Tolerances (tiny SAM, random weights, filters off so every mask counts):
- post-processing on the device, prompt batch sizes, torch.compile: the same math in
  float32, so masks are bit-identical (scores within 1e-5).
- encoder batching: every mask's IoU with its one-by-one twin >= 0.98, scores within 1e-4
  (measured here: bit-identical masks, scores within 1e-7; batched kernels may add in
  another order on other hardware).
- fp16 (autocast): every mask's IoU with its fp32 twin >= 0.98 (measured: min 0.993).
- bf16 (autocast): mean IoU >= 0.98 and every mask >= 0.90 (measured: mean 0.989, min
  0.941). bf16 keeps 8 mantissa bits: logits are off by ~0.4% of their size, and random
  weights put many pixels' logits next to the threshold, so some flip. Trained weights give
  decisive logits; this is the worst case, not the expected one.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest
import torch
from helpers_sam import OPEN, best_match_ious, propose, scene, tiny_tool
from segment_anything import SamAutomaticMaskGenerator

from cache.keys import make_key
from tools.accel import default_points_per_batch
from tools.base import Workspace
from tools.encode_queue import EncodeQueue
from tools.errors import ConfigError
from tools.sam_postprocess import pack_bits, pack_bits_torch
from tools.sam_propose import SamProposeParams

# Stability filter on with a small offset: the tiny model's stability scores spread out.
STABLE = {**OPEN, "stability_score_offset": 0.01, "stability_score_thresh": 0.5}
# NMS on: random masks nearly all span the image, so only a high threshold keeps several.
NMS = {**OPEN, "box_nms_thresh": 0.99}


@pytest.mark.parametrize("knobs", [OPEN, STABLE, NMS])
def test_device_post_processing_matches_the_official_generator(knobs: dict) -> None:
    image, tool = scene(), tiny_tool()
    ours = propose(tool, image, points_per_side=8, points_per_batch=20, **knobs)
    official_knobs = {k: v for k, v in knobs.items() if k != "max_proposals"}
    generator = SamAutomaticMaskGenerator(
        tool.model, points_per_side=8, points_per_batch=20, output_mode="binary_mask", **official_knobs
    )
    records = [r for r in generator.generate(image.pixels) if r["area"] > 0]
    records.sort(key=lambda r: -r["predicted_iou"])
    assert len(ours) == len(records) > 1
    np.testing.assert_array_equal(ours.masks, np.stack([r["segmentation"] for r in records]))
    np.testing.assert_allclose(ours.scores, [r["predicted_iou"] for r in records], atol=1e-6)
    np.testing.assert_allclose(ours.stability, [r["stability_score"] for r in records], atol=1e-6)
    np.testing.assert_array_equal(ours.areas, [r["area"] for r in records])
    xywh = np.array([r["bbox"] for r in records], dtype=np.float32)
    np.testing.assert_array_equal(ours.boxes[:, :2], xywh[:, :2])
    np.testing.assert_array_equal(ours.boxes[:, 2:] - ours.boxes[:, :2], xywh[:, 2:])


@pytest.mark.parametrize("width", [1, 7, 8, 13, 100])
def test_device_bit_packing_is_numpy_packbits(width: int) -> None:
    masks = np.random.default_rng(width).random((3, 5, width)) > 0.5
    expected = np.packbits(masks, axis=-1)
    np.testing.assert_array_equal(pack_bits(torch.from_numpy(masks)).numpy(), expected)
    # What a GPU runs (pack_bits uses numpy on CPU tensors).
    np.testing.assert_array_equal(pack_bits_torch(torch.from_numpy(masks)).numpy(), expected)


@pytest.mark.parametrize(("precision", "mean_min", "each_min"), [("fp16", 0.98, 0.98), ("bf16", 0.98, 0.90)])
def test_reduced_precision_matches_fp32(precision: str, mean_min: float, each_min: float) -> None:
    image = scene()
    ref = propose(tiny_tool(), image, points_per_side=8, **OPEN)
    out = propose(tiny_tool({"precision": precision}), image, points_per_side=8, **OPEN)
    assert len(out) == len(ref) > 100
    ious = best_match_ious(ref.masks, out.masks)
    assert ious.mean() >= mean_min and ious.min() >= each_min, (ious.mean(), ious.min())
    # The option does something: predicted IoUs move by float16-sized amounts, not zero.
    diff = np.abs(np.sort(out.scores) - np.sort(ref.scores)).max()
    assert 0 < diff < 0.02


def test_precision_is_part_of_the_cache_key_and_batch_sizes_are_not() -> None:
    fp32 = tiny_tool()
    assert not fp32.fingerprint().endswith(("bf16", "fp16"))  # fp32 keys are what they were
    fingerprints = {tiny_tool({"precision": p}).fingerprint() for p in ("fp32", "bf16", "fp16")}
    assert len(fingerprints) == 3
    assert tiny_tool({"precision": "bf16"}).fingerprint() == fp32.fingerprint() + ":bf16"
    ws = Workspace(scene(), "x")

    def key(tool, **params) -> str:
        p = SamProposeParams(**params)
        return make_key(tool.name, tool.version, tool.fingerprint(), tool.key_inputs(ws, p), tool.key_args(p))

    same = {
        key(fp32),
        key(fp32, points_per_batch=7),
        key(tiny_tool({"encoder_batch": 4, "compile": True}), points_per_batch=300),
    }
    assert len(same) == 1
    assert key(tiny_tool({"precision": "bf16"})) not in same


def test_prompt_batch_size_defaults_per_device_and_does_not_change_masks() -> None:
    tool = tiny_tool()
    assert tool.points_per_batch(SamProposeParams()) == default_points_per_batch("cpu") == 64
    assert default_points_per_batch("cuda:1") == 256
    assert tool.points_per_batch(SamProposeParams(points_per_batch=5)) == 5
    run_wide = tiny_tool({"points_per_batch": 9})  # --points-per-batch: ToolSettings
    assert run_wide.points_per_batch(SamProposeParams()) == 9
    assert run_wide.points_per_batch(SamProposeParams(points_per_batch=5)) == 5  # a call's own wins
    image = scene()
    ref = propose(tool, image, points_per_side=8, **OPEN)
    assert tool.decode_batches == 1
    for batch in (1, 7, 200):
        out = propose(tool, image, points_per_side=8, points_per_batch=batch, **OPEN)
        np.testing.assert_array_equal(out.masks, ref.masks)
        np.testing.assert_allclose(out.scores, ref.scores, atol=1e-5)
    assert tool.decode_batches == 1 + 64 + 10 + 1


def _concurrent(tool, images, **params) -> list:
    results: dict[int, object] = {}

    async def main() -> None:
        async def one(i: int) -> None:
            results[i] = await tool(Workspace(images[i], "x"), SamProposeParams(**params))

        async with anyio.create_task_group() as tg:
            for i in range(len(images)):
                tg.start_soon(one, i)

    anyio.run(main)
    return [results[i] for i in range(len(images))]


def test_waiting_images_are_encoded_together_with_the_same_masks() -> None:
    images = [scene(60 + 8 * i, 100 - 10 * i, seed=i) for i in range(3)]  # sizes differ
    one_by_one = tiny_tool()
    ref = _concurrent(one_by_one, images, points_per_side=6, **OPEN)
    assert (one_by_one.encodes, one_by_one.encoder_forwards) == (3, 3)
    batched = tiny_tool({"encoder_batch": 3})
    out = _concurrent(batched, images, points_per_side=6, **OPEN)
    assert (batched.encodes, batched.encoder_forwards) == (3, 1)
    for a, b in zip(ref, out, strict=True):
        assert len(a) == len(b) > 0
        assert best_match_ious(a.masks, b.masks).min() >= 0.98
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-4)
    pairs = tiny_tool({"encoder_batch": 2})
    _concurrent(pairs, images, points_per_side=2)
    assert (pairs.encodes, pairs.encoder_forwards) == (3, 2)
    assert len(pairs._queue) == 0  # nothing left announced after the calls


def test_a_lone_call_is_encoded_at_once() -> None:
    tool = tiny_tool({"encoder_batch": 8})
    propose(tool, scene(), points_per_side=2)
    assert (tool.encodes, tool.encoder_forwards) == (1, 1)


def test_encode_queue_counts_waiters_and_skips_done_images() -> None:
    queue = EncodeQueue()
    a, b, c = scene(seed=0), scene(seed=1), scene(seed=2)
    with queue.waiting(a), queue.waiting(b), queue.waiting(b), queue.waiting(c):
        assert len(queue) == 3
        assert [i.digest for i in queue.batch_for(c, 2, lambda d: False)] == [c.digest, a.digest]
        assert [i.digest for i in queue.batch_for(a, 8, lambda d: d == b.digest)] == [a.digest, c.digest]
    assert len(queue) == 0
    with pytest.raises(RuntimeError), queue.waiting(a):
        raise RuntimeError("a failed call still leaves the queue")
    assert len(queue) == 0


def test_stage_clock_splits_the_work() -> None:
    tool = tiny_tool()
    propose(tool, scene(), points_per_side=8, **OPEN)
    seconds = tool.clock.seconds
    assert set(seconds) == {"encode", "decode", "postprocess"} and all(v > 0 for v in seconds.values())
    propose(tool, scene(), points_per_side=8, **OPEN)  # cached embedding: no encode time added
    assert tool.clock.seconds["encode"] == seconds["encode"]


def test_bad_gpu_settings_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; use one of fp32, bf16, fp16"):
        tiny_tool({"precision": "fp8"})
    with pytest.raises(ConfigError, match="encoder batch must be at least 1"):
        tiny_tool({"encoder_batch": 0})
    with pytest.raises(ConfigError, match="points per batch must be at least 1"):
        tiny_tool({"points_per_batch": 0})


@pytest.mark.slow
def test_compiled_forwards_give_the_same_masks() -> None:
    """~10 s: tracing SAM's encoder with Dynamo is slow even on the tiny model, and this is
    the only check that the compiled path runs end to end. ``aot_eager`` captures and runs
    the graphs as Inductor would receive them, without generating C++ (which would take
    about a minute here); ``bench speed --compile`` measures Inductor itself."""
    image = scene()
    ref = propose(tiny_tool(), image, points_per_side=4, **OPEN)
    compiled = tiny_tool({"compile": True, "compile_backend": "aot_eager"})
    out = propose(compiled, image, points_per_side=4, **OPEN)
    assert compiled._forwards is not None
    assert type(compiled._forwards[0]).__name__ == "OptimizedModule"
    np.testing.assert_array_equal(out.masks, ref.masks)
    np.testing.assert_allclose(out.scores, ref.scores, atol=1e-5)
