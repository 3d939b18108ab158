"""COCO RLE: known encodings, column-major order, round trips, corrupt input."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from bench.data_errors import DatasetError
from bench.rle import decode_rle, encode_rle, parse_counts, rle_area


def _known_mask() -> np.ndarray:
    # 3 rows x 5 columns; pixels (row 0, col 1) and (row 2, col 4).
    m = np.zeros((3, 5), dtype=bool)
    m[0, 1] = True
    m[2, 4] = True
    return m


def test_uncompressed_counts_walk_columns_first() -> None:
    # Column-major walk: col 0 = 3 zeros, then (0,1) is pixel 3 -> runs 3 zeros, 1 one,
    # then 10 zeros up to (2,4) which is the last pixel (index 14): 3 + 1 + 10 + 1 = 15.
    rle = {"size": [3, 5], "counts": [3, 1, 10, 1]}
    np.testing.assert_array_equal(decode_rle(rle), _known_mask())


def test_encode_gives_size_and_string_counts_that_decode_back() -> None:
    rle = encode_rle(_known_mask())
    assert rle["size"] == [3, 5]
    assert isinstance(rle["counts"], str)
    assert parse_counts(rle["counts"]).tolist() == [3, 1, 10, 1]
    np.testing.assert_array_equal(decode_rle(rle), _known_mask())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_bytes_counts_and_pycocotools_agree_on_random_non_square_masks() -> None:
    rng = np.random.default_rng(0)
    for shape in [(7, 13), (13, 7), (1, 9), (40, 3)]:
        mask = rng.random(shape) < 0.4
        ours = encode_rle(mask)
        theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode()
        np.testing.assert_array_equal(decode_rle(theirs), mask)  # bytes counts
        np.testing.assert_array_equal(decode_rle(ours), coco_mask.decode(theirs).astype(bool))
        assert rle_area(ours) == int(mask.sum())


def test_large_runs_use_multi_char_and_delta_coding() -> None:
    mask = np.zeros((480, 640), dtype=bool)
    mask[100:300, 50:600] = True  # long runs, differences between columns
    mask[5, 5] = True
    rle = encode_rle(mask)
    out = decode_rle(rle)
    assert out.shape == (480, 640) and out.dtype == bool
    np.testing.assert_array_equal(out, mask)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_jagged_masks_match_pycocotools() -> None:
    # Blocky random masks: runs from 1 to thousands of pixels, deltas of both signs.
    rng = np.random.default_rng(3)
    for block in (1, 3, 17):
        grid = rng.random((480 // block + 1, 640 // block + 1)) < 0.5
        mask = np.kron(grid, np.ones((block, block), bool))[:480, :640]
        theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        np.testing.assert_array_equal(decode_rle(theirs), mask)
        assert rle_area(theirs) == int(coco_mask.area(theirs)) == int(mask.sum())


def test_all_empty_and_all_full() -> None:
    for mask in (np.zeros((4, 6), bool), np.ones((4, 6), bool)):
        np.testing.assert_array_equal(decode_rle(encode_rle(mask)), mask)


@pytest.mark.parametrize(
    "rle",
    [
        {"size": [3, 5], "counts": ""},  # covers 0 of 15 pixels (pycocotools returns garbage)
        {"size": [3, 5], "counts": "1"},
        {"size": [3, 5], "counts": [20]},  # too many pixels
        {"size": [3, 5], "counts": [5, -1, 11]},
        {"size": [3, 5], "counts": "zz~"},  # outside the alphabet
        {"size": [3, 5], "counts": "3b"},  # ends inside a multi-char number
        {"size": [3], "counts": "31:0"},
        {"counts": "31:0"},
        {"size": [3, 5], "counts": 7},
        {"size": [3, 5], "counts": "o" * 20 + "0"},  # a 105-bit number
    ],
)
def test_corrupt_rle_raises_dataset_error(rle: dict) -> None:
    with pytest.raises(DatasetError):
        decode_rle(rle)


def test_encode_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_rle(np.zeros((2, 2, 2), bool))
