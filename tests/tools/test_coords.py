"""tools.coords: the one mapping between the original image, the working copy, the VLM's view
and SAM's input frame; and the checks that turn a bad box into a message for the model."""

from __future__ import annotations

import numpy as np
import pytest
from segment_anything.utils.transforms import ResizeLongestSide

from tools.coords import Frame, View, box_iou, map_box, map_points, mask_box
from tools.errors import ToolError
from tools.images import downscale, working_copy
from tools.types import Image

# Odd sizes on purpose: rounding is where frames drift apart.
SIZES = [(1001, 333), (333, 1001), (97, 101), (2049, 1537), (768, 768)]


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_frames_match_the_images_they_describe(h: int, w: int) -> None:
    pixels = np.zeros((h, w, 3), np.uint8)
    original = Frame.from_hw((h, w), "original")
    working = Frame.from_hw(working_copy(Image.from_array(pixels), 1024).size)
    assert original.downscaled(1024).wh == working.wh
    view = original.downscaled(768)
    assert view.wh == downscale(pixels, 768).shape[1::-1]  # what the VLM is really shown
    for side in (1024, 128):
        sam = working.sam(side)
        expected = ResizeLongestSide.get_preprocess_shape(working.height, working.width, side)
        assert (sam.height, sam.width) == expected  # the size SAM's encoder input really has


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_points_and_boxes_round_trip_through_every_frame(h: int, w: int) -> None:
    original = Frame.from_hw((h, w), "original")
    frames = [original.downscaled(1024), original.downscaled(768), original.sam(1024), original.sam(128)]
    rng = np.random.default_rng(h * w)
    pts = rng.uniform(0, 1, (20, 2)) * [w, h]
    box = np.array([0.1 * w, 0.2 * h, 0.7 * w, 0.9 * h])
    for frame in frames:
        back = map_points(map_points(pts, original, frame), frame, original)
        np.testing.assert_allclose(back, pts, atol=1e-9)
        np.testing.assert_allclose(map_box(map_box(box, original, frame), frame, original), box, atol=1e-9)
        # Corners stay corners: (0, 0) -> (0, 0) and (W, H) -> the other frame's (W, H).
        np.testing.assert_allclose(map_points([[0, 0], [w, h]], original, frame), [[0, 0], list(frame.wh)])


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_sam_frame_agrees_with_segment_anything(h: int, w: int) -> None:
    working = Frame.from_hw((h, w))
    transform = ResizeLongestSide(1024)
    pts = np.array([[0.0, 0.0], [w / 3, h / 7], [w - 0.5, h - 0.5]])
    np.testing.assert_allclose(map_points(pts, working, working.sam()), transform.apply_coords(pts, (h, w)))
    box = np.array([[3.5, 7.25, w / 2, h - 1.0]])
    np.testing.assert_allclose(map_box(box[0], working, working.sam()), transform.apply_boxes(box, (h, w))[0])


def test_norm1000_view_maps_to_pixels_of_any_frame() -> None:
    original = Frame.from_hw((300, 1001), "original")
    view = View(original.downscaled(768, "view"), "norm1000")
    assert view.bounds == (1000.0, 1000.0)
    np.testing.assert_allclose(view.box_to([0, 0, 1000, 1000], original), [0, 0, 1001, 300])
    np.testing.assert_allclose(view.points_to([[500, 500]], original), [[500.5, 150.0]])
    box = np.array([100.0, 30.0, 400.0, 290.0])
    np.testing.assert_allclose(view.box_to(view.box_from(box, original), original), box)
    pixels = View(view.frame, "pixels")
    assert pixels.bounds == (768.0, 230.0)
    np.testing.assert_allclose(pixels.box_to([0, 0, 768, 230], original), [0, 0, 1001, 300])
    assert "0-1000" in view.describe() and "768x230" in pixels.describe()


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([50, 10, 20, 40], "inverted or has zero area"),
        ([10, 10, 10, 40], "inverted or has zero area"),
        ([800, 10, 900, 40], "outside the image"),
        ([-90, -50, -10, -5], "outside the image"),
        ([float("nan"), 1, 2, 3], "not a finite number"),
        (["left", 1, 2, 3], "must be numbers"),
        ([1, 2, 3], "must be numbers"),
    ],
)
def test_bad_boxes_are_tool_errors_that_say_what_to_send(box: list, message: str) -> None:
    view = View(Frame(768, 230, "view"))
    with pytest.raises(ToolError, match=message) as info:
        view.check_box(box)
    assert "\n" not in str(info.value)


def test_boxes_are_clipped_and_points_checked() -> None:
    view = View(Frame(768, 230, "view"))
    np.testing.assert_allclose(view.check_box([-5, 10, 800, 300]), [0, 10, 768, 230])
    np.testing.assert_allclose(view.check_points([[0, 0], [768, 230]]), [[0, 0], [768, 230]])
    with pytest.raises(
        ToolError, match=r"point \[769, 5\] lies outside the image; give points \[x, y\] in pixels"
    ):
        view.check_points([[3, 4], [769, 5]])
    with pytest.raises(ToolError, match="must be numbers"):
        view.check_points([[1, 2, 3]])


def test_box_helpers() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_box(mask), [3, 2, 9, 5])  # continuous corners
    assert box_iou(mask_box(mask), [3, 2, 9, 5]) == 1.0
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 1, 1], [5, 5, 6, 6]) == 0.0
    assert not mask_box(np.zeros((3, 3), bool)).any()
