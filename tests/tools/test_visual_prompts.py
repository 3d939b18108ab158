"""Visual prompts: shapes, and pixels changed only where each mode should change them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers_clip import scene

from tools.types import boxes_from_masks
from tools.visual_prompts import (
    CLIP_MEAN,
    CLIP_STD,
    MODES,
    PromptStyle,
    crop_boxes,
    prompt_batch,
    render_prompts,
)


def _norm(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x).permute(2, 0, 1).float() / 255.0
    return (t - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def _letterboxed(x: np.ndarray, size: int) -> torch.Tensor:
    """Independent reference: area-resize the longer side to ``size``, centre, pad with 0."""
    h, w = x.shape[:2]
    s = size / max(h, w)
    ih, iw = round(h * s), round(w * s)
    t = F.interpolate(_norm(x)[None], size=(ih, iw), mode="area")[0]
    out = torch.zeros(3, size, size)
    top, left = (size - ih) // 2, (size - iw) // 2
    out[:, top : top + ih, left : left + iw] = t
    return out


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, masks = scene(empty=True)
    return image, masks, boxes_from_masks(masks)


def test_grey_keeps_mask_pixels_and_greys_the_rest(data):
    image, masks, boxes = data
    prompts = render_prompts(image, masks, boxes, "grey", PromptStyle(grey=100))
    assert len(prompts) == len(masks)
    for prompt, mask in zip(prompts, masks, strict=True):
        assert prompt.shape == image.shape and prompt.dtype == np.uint8
        assert np.array_equal(prompt[mask], image[mask])
        assert (prompt[~mask] == 100).all()


def test_blur_keeps_mask_pixels_and_blurs_the_rest(data):
    image, masks, boxes = data
    prompts = render_prompts(image, masks, boxes, "blur")
    for prompt, mask in zip(prompts[:3], masks[:3], strict=True):
        assert np.array_equal(prompt[mask], image[mask])
        changed = (prompt[~mask] != image[~mask]).any(axis=-1).mean()
        assert changed > 0.8  # the noisy background cannot survive a blur
        # Blurring smooths: neighbouring background pixels differ less than before.
        rough = lambda a: np.abs(np.diff(a.astype(int), axis=1)).mean()  # noqa: E731
        assert rough(prompt[60:90, 0:40]) < rough(image[60:90, 0:40]) / 2


def test_outline_draws_a_red_ring_just_outside_the_mask(data):
    image, masks, boxes = data
    style = PromptStyle(outline_width=0.03)  # 0.03 * 128 -> 4 px
    prompts = render_prompts(image, masks, boxes, "outline", style)
    for prompt, mask in zip(prompts[:3], masks[:3], strict=True):
        changed = (prompt != image).any(axis=-1)
        assert not changed[mask].any()  # the object itself is untouched
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        ring = (prompt == (255, 0, 0)).all(axis=-1)
        # The pixel right above/left of the box is on the contour (where inside the image).
        if y0 > 0:
            assert ring[y0 - 1, (x0 + x1) // 2]
        if x0 > 0:
            assert ring[(y0 + y1) // 2, x0 - 1]
        # Nothing changes further than the width away.
        far = np.ones_like(mask)
        far[max(0, y0 - 4) : y1 + 5, max(0, x0 - 4) : x1 + 5] = False
        assert not changed[far].any()
    assert np.array_equal(prompts[3], image)  # empty mask: nothing to outline


def test_crop_is_the_box_with_margin_and_keeps_background(data):
    image, masks, boxes = data
    style = PromptStyle(margin=0.1)
    crops = render_prompts(image, masks, boxes, "crop", style)
    regions = np.round(crop_boxes(masks, boxes, 0.1)).astype(int)
    for crop, (x0, y0, x1, y1), box in zip(crops[:3], regions[:3], boxes[:3], strict=True):
        assert crop.shape[0] == crop.shape[1]  # widened to square, not stretched
        bx0, by0, bx1, by1 = box.astype(int)
        assert x0 < bx0 and y0 < by0 and x1 > bx1 + 1 and y1 > by1 + 1  # margin on every side
        # The part inside the image is the image itself, background included.
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, 128), min(y1, 96)
        assert np.array_equal(crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0], image[sy0:sy1, sx0:sx1])
    # With a wide margin the yellow box's crop leaves the top edge: padded with the mean colour.
    wide = render_prompts(image, masks[2:3], boxes[2:3], "crop", PromptStyle(margin=0.5))[0]
    pad = np.array([round(255 * c) for c in CLIP_MEAN], dtype=np.uint8)
    assert (wide[:7] == pad).all() and not (wide[9:] == pad).all(axis=-1).all()
    # Empty mask: the whole image, letterboxed to a square.
    assert crops[3].shape == (128, 128, 3)
    assert np.array_equal(crops[3][16:112], image)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_batch_shapes_and_empty_masks(data, mode, size):
    image, masks, boxes = data
    batch = prompt_batch(image, masks, boxes, mode, size=size)
    assert batch.shape == (len(masks), 3, *size)
    assert batch.dtype == torch.float32 and torch.isfinite(batch).all()
    none = prompt_batch(image, masks[:0], boxes[:0], mode, size=size)
    assert none.shape == (0, 3, *size)


def test_batch_grey_matches_a_letterboxed_render(data):
    image, masks, boxes = data
    batch = prompt_batch(image, masks, boxes, "grey", size=(64, 64))
    for i in range(3):
        ref = _letterboxed(render_prompts(image, masks[i : i + 1], boxes[i : i + 1], "grey")[0], 64)
        assert (batch[i] - ref).abs().mean() < 0.05
    # Far from every mask the batch is exactly the grey level; inside, exactly the image.
    grey = (128 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(batch[0][:, 40, 60], grey, atol=1e-5)
    full = _letterboxed(image, 64)
    assert torch.allclose(batch[0][:, 20, 15], full[:, 20, 15], atol=1e-5)  # inside the red box


def test_batch_blur_and_outline_change_only_the_outside(data):
    image, masks, boxes = data
    full = _letterboxed(image, 64)
    blur = prompt_batch(image, masks, boxes, "blur", size=(64, 64))
    outline = prompt_batch(image, masks, boxes, "outline", size=(64, 64))
    inside = (slice(None), slice(18, 22), slice(12, 18))  # well inside the red box at 64 px
    assert torch.allclose(blur[0][inside], full[inside], atol=1e-5)
    assert torch.allclose(outline[0][inside], full[inside], atol=1e-5)
    assert (blur[0][:, 40:, 70 // 2 :] - full[:, 40:, 70 // 2 :]).abs().mean() > 0.1
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    is_red = (outline[0] - red.view(3, 1, 1)).abs().amax(dim=0) < 1e-4
    assert 10 < int(is_red.sum()) < 200  # a thin contour, not a fill
    assert torch.allclose(outline[3], full, atol=1e-5)  # empty mask: untouched image


def test_batch_crop_matches_resized_render(data):
    image, masks, boxes = data
    batch = prompt_batch(image, masks, boxes, "crop", size=(64, 64))
    crop = render_prompts(image, masks[1:2], boxes[1:2], "crop")[0]  # blue box, fully inside
    ref = F.interpolate(_norm(crop)[None], size=(64, 64), mode="bilinear", antialias=True)[0]
    assert (batch[1] - ref).abs().mean() < 0.1
    whole = _letterboxed(image, 64)  # empty mask: the whole image
    assert (batch[3] - whole).abs().mean() < 0.1


def test_unknown_mode_and_bad_shapes_raise(data):
    image, masks, boxes = data
    with pytest.raises(ValueError, match="mode"):
        prompt_batch(image, masks, boxes, "sketch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="masks"):
        prompt_batch(image, masks[:, :10], boxes, "grey")


def test_tiny_object_keeps_its_outline_at_model_resolution():
    image = np.full((400, 400, 3), 90, np.uint8)
    masks = np.zeros((1, 400, 400), bool)
    masks[0, 200:202, 300:302] = True  # 2x2 px: under half a pixel at 64 px
    batch = prompt_batch(image, masks, boxes_from_masks(masks), "outline", size=(64, 64))
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    is_red = (batch[0] - red.view(3, 1, 1)).abs().amax(dim=0) < 1e-4
    ys, xs = torch.nonzero(is_red, as_tuple=True)
    assert len(ys) > 0 and abs(float(ys.float().mean()) - 32) < 3 and abs(float(xs.float().mean()) - 48) < 3
