"""With NMS keeping every box, sam_propose upscales only the best-scored candidates it needs:
the same masks, scores and order as upscaling them all (and as the official generator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_sam import OPEN, propose, scene, tiny_tool
from segment_anything import SamAutomaticMaskGenerator

from tools import sam_postprocess
from tools.sam_postprocess import TopScored, fewest_upscaled
from tools.sam_propose import SamProposeParams

STABLE = {**OPEN, "stability_score_offset": 0.01, "stability_score_thresh": 0.5}


def official_top(tool, image, k: int, knobs: dict) -> list[dict]:  # type: ignore[no-untyped-def]
    official = {key: v for key, v in knobs.items() if key != "max_proposals"}
    generator = SamAutomaticMaskGenerator(
        tool.model, points_per_side=8, points_per_batch=20, output_mode="binary_mask", **official
    )
    records = [r for r in generator.generate(image.pixels) if r["area"] > 0]
    records.sort(key=lambda r: -r["predicted_iou"])
    return records[:k]


@pytest.mark.parametrize(("knobs", "most_upscaled"), [(OPEN, 24), (STABLE, 191)])
def test_the_best_k_are_the_official_best_k(
    knobs: dict, most_upscaled: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, tool = scene(), tiny_tool()
    upscaled: list[int] = []
    real = sam_postprocess.filter_batch

    def counting(model, low_res, *args, **kw):  # type: ignore[no-untyped-def]
        upscaled.append(len(low_res))
        return real(model, low_res, *args, **kw)

    monkeypatch.setattr(sam_postprocess, "filter_batch", counting)
    ours = propose(tool, image, points_per_side=8, points_per_batch=20, **{**knobs, "max_proposals": 12})
    records = official_top(tool, image, 12, knobs)
    assert len(ours) == len(records) == 12
    np.testing.assert_array_equal(ours.masks, np.stack([r["segmentation"] for r in records]))
    np.testing.assert_allclose(ours.scores, [r["predicted_iou"] for r in records], atol=1e-6)
    np.testing.assert_allclose(ours.stability, [r["stability_score"] for r in records], atol=1e-6)
    np.testing.assert_array_equal(ours.areas, [r["area"] for r in records])
    assert sum(upscaled) <= most_upscaled  # fewer than the 192 decoded candidates were upscaled


def test_equal_scores_and_too_few_held_fall_back_to_the_full_way() -> None:
    top = TopScored(cap=2)
    logits = torch.zeros(3, 4, 4)
    top.add(logits, torch.tensor([0.5, 0.5, 0.1]), 0.0)
    assert top.tied() and top.dropped and len(top.iou) == 2  # type: ignore[arg-type]
    image, tool = scene(), tiny_tool()
    held_few = propose(tool, image, points_per_side=8, points_per_batch=20, **{**OPEN, "max_proposals": 12})
    original = sam_postprocess.TopScored

    class Tiny(original):  # type: ignore[misc, valid-type]
        def __init__(self, cap: int) -> None:
            super().__init__(cap=3)  # fewer held than max_proposals: the full way must run

    try:
        sam_postprocess.TopScored = Tiny  # type: ignore[misc]
        import tools.sam_propose as sp

        sp.TopScored = Tiny  # type: ignore[misc]
        fallback = propose(
            tool, image, points_per_side=8, points_per_batch=20, **{**OPEN, "max_proposals": 12}
        )
    finally:
        sam_postprocess.TopScored = original  # type: ignore[misc]
        sp.TopScored = original  # type: ignore[misc]
    np.testing.assert_array_equal(fallback.masks, held_few.masks)
    np.testing.assert_array_equal(fallback.scores, held_few.scores)


def test_only_nms_that_keeps_everything_takes_the_short_way() -> None:
    assert fewest_upscaled(SamProposeParams(**OPEN))
    assert not fewest_upscaled(SamProposeParams(**{**OPEN, "box_nms_thresh": 0.99}))
    assert not fewest_upscaled(SamProposeParams(**{**OPEN, "min_mask_region_area": 10}))
    assert not fewest_upscaled(SamProposeParams())  # the defaults: NMS at 0.7
