"""Every coordinate convention a real VLM answers in maps to the image's pixels, boxes and points
alike; Gemini's is y first; Qwen2.5-VL's frame is its processor's 28-pixel grid."""

from __future__ import annotations

import numpy as np
import pytest

from tools.coords import UNITS, Frame, View, smart_resize
from tools.errors import ToolError

VIEW = Frame(320, 240, "view")
IMAGE = Frame(1001, 751, "original")


@pytest.mark.parametrize("units", UNITS)
def test_every_convention_round_trips_boxes_and_points(units: str) -> None:
    view = View(VIEW, units)  # type: ignore[arg-type]
    box = np.array([12.5, 40.0, 300.0, 200.25])
    told = view.box_from(box, VIEW)  # what the model is told a candidate's box is
    np.testing.assert_allclose(view.box_to(told, VIEW), box, atol=1e-9)
    np.testing.assert_allclose(view.box_to(told, IMAGE), box * ([1001 / 320, 751 / 240] * 2), atol=1e-9)
    pts = np.array([[5.0, 7.0], [319.0, 1.0]])
    np.testing.assert_allclose(view.points_to(view.points_from(pts, VIEW), VIEW), pts, atol=1e-9)


def test_each_convention_reads_the_same_box_from_its_own_numbers() -> None:
    """The object at x 32..160, y 60..180 of a 320x240 view, as each family writes it."""
    written = {
        "pixels": [32, 60, 160, 180],
        "norm1000": [100, 250, 500, 750],
        "norm1000-yx": [250, 100, 750, 500],  # Gemini: [ymin, xmin, ymax, xmax]
        "norm1": [0.1, 0.25, 0.5, 0.75],
        "percent": [10, 25, 50, 75],
    }
    assert set(written) == set(UNITS)
    for units, numbers in written.items():
        np.testing.assert_allclose(View(VIEW, units).box_to(numbers, VIEW), [32, 60, 160, 180], err_msg=units)  # type: ignore[arg-type]
    # Points follow the same order: Gemini's [y, x].
    np.testing.assert_allclose(View(VIEW, "norm1000-yx").points_to([[250, 100]], VIEW), [[32, 60]])
    # Read in the wrong order, the same numbers land elsewhere.
    assert not np.allclose(View(VIEW, "norm1000").box_to(written["norm1000-yx"], VIEW), [32, 60, 160, 180])


def test_checks_speak_the_convention_and_keep_its_order() -> None:
    gemini = View(VIEW, "norm1000-yx")
    np.testing.assert_allclose(gemini.check_box([250, 100, 750, 1200]), [250, 100, 750, 1000])  # clipped in x
    with pytest.raises(ToolError, match=r"give \[ymin, xmin, ymax, xmax\].*y first"):
        gemini.check_box([750, 100, 250, 500])  # ymin > ymax
    with pytest.raises(ToolError, match=r"give points \[y, x\]"):
        gemini.check_points([[1200, 10]])  # y beyond 1000
    with pytest.raises(ToolError, match="0-1 on both axes"):
        View(VIEW, "norm1").check_box([2, 2, 3, 3])  # outside a 0-1 picture
    assert "0-100" in View(VIEW, "percent").describe() and "pixels of the 320x240" in View(VIEW).describe()


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((512, 768), (504, 756)),  # the example: 768x512 is seen as 756x504
        ((322, 434), (336, 448)),  # halves round to even (11.5 -> 12, 15.5 -> 16), as Python's round
        ((378, 602), (392, 616)),  # 13.5 -> 14, 21.5 -> 22
        ((406, 406), (392, 392)),  # 14.5 -> 14
        ((10, 10), (56, 56)),  # under min_pixels (56*56): grown, then rounded up
        ((4000, 3000), (1148, 840)),  # over max_pixels=28*28*1280: shrunk, then rounded down
    ],
)
def test_smart_resize_follows_the_qwen_processor(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    max_pixels = 28 * 28 * 1280 if hw == (4000, 3000) else 16384 * 28 * 28
    assert smart_resize(*hw, max_pixels=max_pixels) == expected
    h, w = smart_resize(*hw, max_pixels=max_pixels)
    assert h % 28 == 0 and w % 28 == 0 and 56 * 56 <= h * w <= max_pixels
    assert Frame(hw[1], hw[0]).on_grid(max_pixels=max_pixels).wh == (expected[1], expected[0])


def test_smart_resize_refuses_what_the_processor_refuses() -> None:
    with pytest.raises(ValueError, match="too small"):
        smart_resize(9, 500)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2100)


def test_smart_resize_agrees_with_transformers_when_installed() -> None:
    processor = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    rng = np.random.default_rng(0)
    for h, w in rng.integers(12, 2500, size=(200, 2)):
        if max(h, w) / min(h, w) > 200:
            continue
        assert smart_resize(int(h), int(w), max_pixels=28 * 28 * 1280) == processor.smart_resize(
            int(h), int(w), factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280
        )
