"""tools.render: one palette, mask edges, overlays for people, outlined candidates for the VLM."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tools.errors import InputError
from tools.render import (
    CHOSEN_EDGE,
    CHOSEN_FILL,
    PALETTE,
    WARNING_FILL,
    image_data_url,
    mask_edges,
    outline_candidates,
    overlay,
    palette_colour,
    save_mask_png,
    side_by_side,
)


def box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_palette_has_distinct_named_colours_and_cycles() -> None:
    assert len({c.name for c in PALETTE}) == len(PALETTE) == len({c.rgb for c in PALETTE})
    assert palette_colour(len(PALETTE)) == PALETTE[0]
    assert CHOSEN_EDGE not in {c.rgb for c in PALETTE}  # the chosen mask stays recognisable


def test_mask_edges_are_inner_and_count_the_image_border() -> None:
    mask = box_mask(20, 20, 5, 15, 5, 15)
    edges = mask_edges(mask, width=2)
    assert edges[5, 10] and edges[6, 10] and not edges[7, 10]  # two pixels deep, inside
    assert not edges[4, 10] and not (edges & ~mask).any()
    whole = mask_edges(np.ones((10, 10), bool), width=1)
    assert whole[0].all() and whole[:, -1].all() and not whole[1:-1, 1:-1].any()


def test_overlay_tints_the_chosen_mask_and_outlines_candidates_best_on_top() -> None:
    pixels = np.full((60, 80, 3), 128, np.uint8)
    chosen = box_mask(60, 80, 20, 40, 10, 30)
    other = box_mask(60, 80, 20, 40, 25, 60)  # overlaps the chosen one's right side
    img = np.asarray(overlay(pixels, chosen, [(chosen, "#1"), (other, "#2")], title="loop: q"))
    assert img.shape == (60, 80, 3)
    assert tuple(img[30, 20]) != (128, 128, 128)  # the chosen interior is tinted
    assert tuple(img[30, 45]) == (128, 128, 128)  # the other interior is not
    assert tuple(img[39, 20]) == palette_colour(0).rgb  # candidate 1 edge, drawn over the chosen edge
    assert tuple(img[39, 50]) == palette_colour(1).rgb
    assert tuple(img[39, 27]) == palette_colour(0).rgb  # where they meet, the best one wins
    assert tuple(img[2, 3]) == (0, 0, 0)  # the title box
    plain = np.asarray(overlay(pixels, None))
    assert np.array_equal(plain, pixels)


def test_outline_candidates_downscales_and_keeps_outlines_crisp() -> None:
    pixels = np.zeros((400, 800, 3), np.uint8)
    masks = np.stack([box_mask(400, 800, 100, 300, 100, 300), box_mask(400, 800, 100, 300, 500, 700)])
    out = outline_candidates(pixels, list(masks), ["3", "7"], max_side=200)
    assert out.shape == (100, 200, 3)
    colours = {tuple(int(v) for v in px) for px in out.reshape(-1, 3)}
    assert palette_colour(0).rgb in colours and palette_colour(1).rgb in colours
    assert tuple(out[50, 50]) == (0, 0, 0)  # interiors untouched
    full = outline_candidates(pixels, list(masks), ["", ""])  # no labels, full size
    assert full.shape == pixels.shape and tuple(full[299, 200]) == palette_colour(0).rgb
    assert pixels.max() == 0  # the input is not drawn on


def test_save_mask_png_and_side_by_side(tmp_path: Path) -> None:
    save_mask_png(box_mask(6, 8, 1, 3, 2, 5), (6, 8), tmp_path / "m.png")
    save_mask_png(None, (6, 8), tmp_path / "none.png")
    m = np.asarray(PILImage.open(tmp_path / "m.png"))
    assert m.shape == (6, 8) and m[2, 3] == 255 and m[0, 0] == 0
    assert not np.asarray(PILImage.open(tmp_path / "none.png")).any()
    row = side_by_side([PILImage.new("RGB", (10, 20)), PILImage.new("RGB", (5, 12))], gap=3)
    assert row.size == (18, 20)


def test_image_data_url_downscales_jpeg() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 1000, 3), dtype=np.uint8)
    url = image_data_url(pixels, max_side=256, quality=70)
    assert url.startswith("data:image/jpeg;base64,")
    img = PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and max(img.size) == 256 and img.size[0] > img.size[1]
    small = image_data_url(np.zeros((10, 20, 3), np.uint8))
    assert PILImage.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (20, 10)
    with pytest.raises(InputError):
        image_data_url(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(InputError):
        image_data_url(np.zeros((10, 10, 3), np.float32))


def test_labels_stay_off_a_small_chosen_mask_even_at_the_top_edge() -> None:
    pixels = np.full((120, 200, 3), 128, np.uint8)
    chosen = box_mask(120, 200, 0, 10, 40, 50)  # small, at the top edge: no room for a label above
    other = box_mask(120, 200, 0, 30, 120, 160)  # room below it too
    img = np.asarray(overlay(pixels, chosen, [(chosen, "#12 p=0.40"), (other, "#3 p=0.20")]))
    tinted = np.round(0.55 * 128 + 0.45 * np.array(CHOSEN_FILL)).astype(int)
    inside = img[chosen & ~mask_edges(chosen, 2)]
    assert inside.size and (np.abs(inside.astype(int) - tinted) <= 1).all()  # no label over it
    # Each label is on a box of its candidate's colour, beside (below) its own mask.
    assert (img[11:40, 40:120] == palette_colour(0).rgb).all(axis=-1).sum() > 50
    assert (img[31:60, 120:200] == palette_colour(1).rgb).all(axis=-1).sum() > 50


def test_a_warning_band_runs_across_the_bottom() -> None:
    img = np.asarray(overlay(np.full((80, 120, 3), 128, np.uint8), None, warning="RANDOM WEIGHTS"))
    assert (img[-2] == WARNING_FILL).all(axis=-1).mean() > 0.9 and (img[5] == 128).all()
