"""Perturbations: OpenCV-equivalent Gaussian blur, seeded Gaussian noise, clean, errors."""

from __future__ import annotations

import numpy as np
import pytest

from bench.perturb import PERTURBATIONS, gaussian_blur, gaussian_kernel, perturb, perturb_image
from tools.errors import ConfigError
from tools.types import Image


def test_kernels_follow_opencv() -> None:
    np.testing.assert_allclose(gaussian_kernel(5), np.array([1, 4, 6, 4, 1]) / 16)
    k9 = gaussian_kernel(9)
    sigma = 0.3 * ((9 - 1) * 0.5 - 1) + 0.8  # 1.7
    x = np.arange(9) - 4
    expected = np.exp(-(x**2) / (2 * sigma**2))
    np.testing.assert_allclose(k9, expected / expected.sum())
    assert k9.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        gaussian_kernel(4)


def test_blur_impulse_gives_outer_product_of_kernel() -> None:
    img = np.zeros((21, 21, 3), np.uint8)
    img[10, 10] = 255
    for name, k in (("blur5", 5), ("blur9", 9)):
        out = perturb(img, name)
        kern = gaussian_kernel(k)
        expected = np.rint(255 * np.outer(kern, kern))
        r = k // 2
        np.testing.assert_array_equal(out[10 - r : 11 + r, 10 - r : 11 + r, 0], expected)
        assert out[0, 0, 0] == 0 and out.dtype == np.uint8 and out.shape == img.shape


def test_blur_border_is_reflect_101() -> None:
    # A 1-row image: rows reflect onto themselves, so only the horizontal pass matters.
    row = np.array([[0, 100, 200, 50, 0, 0, 0]], np.uint8)
    out = gaussian_blur(row, 5)
    # REFLECT_101 around index 0: [200, 100 | 0, 100, 200, ...]
    k = np.array([1, 4, 6, 4, 1]) / 16
    first = k @ np.array([200, 100, 0, 100, 200])
    assert out[0, 0] == round(first)  # 75
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    ref = scipy_ndimage.correlate1d(row.astype(float), k, axis=1, mode="mirror")
    np.testing.assert_array_equal(out, np.rint(ref).astype(np.uint8))


def test_blur_keeps_constant_image() -> None:
    img = np.full((6, 9, 3), 77, np.uint8)
    np.testing.assert_array_equal(perturb(img, "blur9"), img)


def test_noise_is_seeded_by_content_and_has_the_right_sigma() -> None:
    img = np.full((64, 64, 3), 128, np.uint8)
    a, b = perturb(img, "noise10"), perturb(img.copy(), "noise10")
    np.testing.assert_array_equal(a, b)  # same image, same noise
    other = img.copy()
    other[0, 0, 0] = 129
    assert not np.array_equal(perturb(other, "noise10")[1:], a[1:])  # another image, other noise
    d10 = a.astype(float) - 128
    d20 = perturb(img, "noise20").astype(float) - 128
    assert d10.std() == pytest.approx(10, rel=0.05)
    assert d20.std() == pytest.approx(20, rel=0.05)
    assert np.abs(d20 - 2 * d10).max() <= 1.5  # same pattern, twice the size (rounding)


def test_noise_clips_to_uint8() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16] = 255
    out = perturb(img, "noise20")
    assert out.dtype == np.uint8
    assert out[16:].min() == 0 and out[:16].max() == 255


def test_clean_is_an_equal_copy() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = perturb(img, "clean")
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        perturb(np.zeros((2, 2, 3), np.uint8), "jpeg50")
    for name in PERTURBATIONS:
        assert name in str(err.value)


def test_perturb_image_returns_new_image() -> None:
    image = Image.from_array(np.full((8, 8, 3), 100, np.uint8))
    assert perturb_image(image, "clean") is image
    noisy = perturb_image(image, "noise10")
    assert noisy.digest != image.digest and noisy.size == image.size
