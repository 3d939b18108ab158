"""Image perturbations for robustness runs: Gaussian noise and Gaussian blur.

- ``noise10`` / ``noise20``: additive Gaussian noise with sigma 10 / 20 (in 0..255 units),
  rounded and clipped. The generator is seeded from the image content, so the same image
  always gets the same noise (runs are reproducible and resumable) and ``noise20`` is
  exactly twice the ``noise10`` pattern.
- ``blur5`` / ``blur9``: what OpenCV's ``GaussianBlur(img, (k, k), 0)`` does, without the
  OpenCV dependency: a separable kernel of size k, border ``BORDER_REFLECT_101``. With
  sigma 0 OpenCV takes fixed binomial kernels for k <= 7 (k=5: 1,4,6,4,1 / 16) and
  ``sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8`` otherwise (k=9: 1.7); so do we. OpenCV's
  8-bit path is fixed-point, so values can differ from it by 1.
- ``clean``: identity.
"""

from __future__ import annotations

import numpy as np

from tools.errors import ConfigError
from tools.types import Image, digest_array

PERTURBATIONS: tuple[str, ...] = ("clean", "noise10", "noise20", "blur5", "blur9")

_NOISE_SIGMA = {"noise10": 10.0, "noise20": 20.0}
_BLUR_SIZE = {"blur5": 5, "blur9": 9}
# OpenCV's small_gaussian_tab, used when sigma <= 0 and ksize is 1, 3, 5 or 7.
_SMALL_KERNELS = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
}


def gaussian_kernel(ksize: int) -> np.ndarray:
    """1-D kernel of OpenCV's ``getGaussianKernel(ksize, 0)``: ``(ksize,) float64``, sums to 1."""
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {ksize}")
    if ksize in _SMALL_KERNELS:
        return np.asarray(_SMALL_KERNELS[ksize], dtype=np.float64)
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(pixels: np.ndarray, ksize: int) -> np.ndarray:
    """Separable Gaussian blur of an ``(H, W[, C]) uint8`` array; returns the same shape and dtype."""
    kernel = gaussian_kernel(ksize)
    r = ksize // 2
    out = np.asarray(pixels, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")  # numpy "reflect" == OpenCV REFLECT_101
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(kernel):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _content_seed(pixels: np.ndarray) -> int:
    return int(digest_array(pixels)[:16], 16)


def add_noise(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Add Gaussian noise (seeded from the image content), round and clip to uint8."""
    rng = np.random.default_rng(_content_seed(pixels))
    noisy = pixels.astype(np.float64) + rng.normal(0.0, 1.0, size=pixels.shape) * sigma
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def perturb(pixels: np.ndarray, name: str) -> np.ndarray:
    """Apply the perturbation ``name`` to an ``(H, W, 3) uint8`` image; returns a new array.

    Raises:
        ConfigError: ``name`` is not one of :data:`PERTURBATIONS`.
    """
    if name not in PERTURBATIONS:
        raise ConfigError(f"unknown perturbation {name!r}; choose one of: {', '.join(PERTURBATIONS)}")
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"perturb needs uint8 pixels, got {arr.dtype}")
    if name in _NOISE_SIGMA:
        return add_noise(arr, _NOISE_SIGMA[name])
    if name in _BLUR_SIZE:
        return gaussian_blur(arr, _BLUR_SIZE[name])
    return arr.copy()


def perturb_image(image: Image, name: str) -> Image:
    """:func:`perturb` on an :class:`Image`; ``clean`` returns the image itself."""
    if name == "clean":
        return image
    return Image.from_array(perturb(image.pixels, name))
