"""Visual prompts: show CLIP one candidate mask at a time.

Modes (one prompt image per mask):

- ``crop``: the mask's box plus a small context margin, widened to the model's aspect
  ratio (no distortion); the background inside the crop is kept.
- ``blur``: the full image, blurred outside the mask.
- ``grey``: the full image, flat grey outside the mask.
- ``outline``: the full image with a red contour drawn just outside the mask.

Two entry points share the geometry:

- :func:`prompt_batch` is the fast path the ranker uses: the whole batch goes straight to
  the model's input size and normalisation with torch ops (``roi_align`` for crops; for
  full-image modes the image and masks are area-downscaled and letterboxed once, then
  composited at model resolution), so no per-crop PIL work and no ``N`` full-size copies.
- :func:`render_prompts` returns human-viewable ``uint8`` prompts at native resolution
  (galleries, debugging, tests).

Full-image modes are letterboxed (padded to square with the normalisation mean) rather
than centre-cropped like CLIP's default preprocessing: a centre crop would cut candidates
near the image border out of their own prompt.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from PIL import ImageFilter

from tools.clip_declaration import DEFAULT_STYLE, PromptMode, PromptStyle

MODES: tuple[PromptMode, ...] = ("crop", "blur", "grey", "outline")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_MASK_CHUNK_ELEMS = 1 << 24  # bound float copies of full-size masks to ~64 MB


def _check(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown visual prompt mode {mode!r}; use one of {', '.join(MODES)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be (N, H, W) matching the image, got {masks.shape}")
    if boxes.shape != (masks.shape[0], 4):
        raise ValueError(f"boxes must be (N, 4), got {boxes.shape}")


def crop_boxes(masks: np.ndarray, boxes: np.ndarray, margin: float = 0.1, aspect: float = 1.0) -> np.ndarray:
    """Continuous XYXY regions ``(N, 4) float32`` that crop mode shows.

    ``boxes`` are inclusive pixel extents (as :func:`tools.types.boxes_from_masks` gives);
    pixel ``i`` spans ``[i, i + 1)``. Each box grows by ``margin`` times its longer side,
    then its shorter dimension grows until ``width / height == aspect``. Empty masks get
    the whole image (letterboxed), so they never produce a degenerate crop.
    """
    n, h, w = masks.shape
    b = boxes.astype(np.float64).copy()
    b[:, 2:] += 1.0
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    pad = np.maximum(margin * side, 1.0)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    bw, bh = b[:, 2] - b[:, 0] + 2 * pad, b[:, 3] - b[:, 1] + 2 * pad
    empty = ~masks.reshape(n, -1).any(axis=1) if n else np.zeros(0, bool)
    cx[empty], cy[empty], bw[empty], bh[empty] = w / 2, h / 2, w, h
    bw, bh = np.maximum(bw, bh * aspect), np.maximum(bh, bw / aspect)
    out = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return out.astype(np.float32)


def _tensor(a: np.ndarray) -> torch.Tensor:
    """Zero-copy view when allowed; read-only arrays (Image.pixels) are copied, not aliased."""
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _normalise(pixels: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """``(..., 3, H, W)`` 0..255 -> CLIP-normalised float."""
    m = torch.tensor(mean, dtype=torch.float32, device=pixels.device).view(3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=pixels.device).view(3, 1, 1) * 255.0
    return (pixels.float() - m) / s


def _letterbox_shape(h: int, w: int, size: tuple[int, int]) -> tuple[int, int]:
    """Inner size of an ``h x w`` image letterboxed into ``size``."""
    scale = min(size[0] / h, size[1] / w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _fit(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-downscale (or bilinear-upscale) ``(B, C, h, w)`` to the letterbox's inner size."""
    h, w = x.shape[-2:]
    ih, iw = _letterbox_shape(h, w, size)
    if (ih, iw) == (h, w):
        return x
    if ih <= h and iw <= w:
        return F.interpolate(x, size=(ih, iw), mode="area")
    return F.interpolate(x, size=(ih, iw), mode="bilinear", align_corners=False)


def _pad(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre a fitted ``(B, C, ih, iw)`` tensor in ``size`` with zeros (the mean colour)."""
    ih, iw = x.shape[-2:]
    top, left = (size[0] - ih) // 2, (size[1] - iw) // 2
    return F.pad(x, (left, size[1] - iw - left, top, size[0] - ih - top))


def _soft_masks(masks: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """``(N, H, W) bool`` -> ``(N, 1, ih, iw)`` coverage in [0, 1], fitted like the image."""
    n, h, w = masks.shape
    step = max(1, _MASK_CHUNK_ELEMS // max(1, h * w))
    parts = []
    for i in range(0, n, step):
        chunk = _tensor(masks[i : i + step]).to(device)
        parts.append(_fit(chunk[:, None].float(), size))
    return torch.cat(parts)


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding."""
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c
    )


def _ring(hard: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` of a ``(B, 1, H, W)`` 0/1 mask but outside it."""
    grown = F.max_pool2d(hard, kernel_size=2 * width + 1, stride=1, padding=width)
    return (grown - hard).clamp_(0, 1)


def prompt_batch(
    image: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    mode: PromptMode,
    size: tuple[int, int] = (224, 224),
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    style: PromptStyle = DEFAULT_STYLE,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """All prompts of one image, ready for ``model.encode_image``.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        masks: ``(N, H, W) bool`` candidates.
        boxes: ``(N, 4)`` XYXY inclusive pixel boxes of the masks.
        mode: ``crop``, ``blur``, ``grey`` or ``outline``.
        size: model input ``(height, width)``.
        mean: normalisation mean (0..1 scale), per channel.
        std: normalisation std.
        style: margins, grey level, blur and outline knobs.
        device: where the work and the result live.

    Returns:
        ``(N, 3, *size) float32`` normalised prompts.
    """
    from torchvision.ops import roi_align

    _check(image, masks, boxes, mode)
    dev = torch.device(device)
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 3, *size), device=dev)
    pixels = _tensor(image).to(dev).permute(2, 0, 1)
    img = _normalise(pixels, mean, std)[None]  # (1, 3, H, W); 0 == the mean colour
    if mode == "crop":
        regions = torch.from_numpy(crop_boxes(masks, boxes, style.margin, size[1] / size[0])).to(dev)
        rois = torch.cat([torch.zeros((n, 1), device=dev), regions], dim=1)
        return roi_align(img, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    # Composite at the letterbox's inner size, then pad: the border stays the mean colour.
    inner = _fit(img, size)  # (1, 3, ih, iw)
    soft = _soft_masks(masks, size, dev)  # (N, 1, ih, iw) coverage
    long_side = max(size)
    if mode == "outline":
        hard = (soft > 0).float()  # any coverage: tiny objects still get their contour
        ring = _ring(hard, max(1, round(style.outline_width * long_side)))
        color = torch.tensor(style.outline_color, dtype=torch.float32, device=dev).view(3, 1, 1)
        red = _normalise(color, mean, std)[None]
        return _pad(inner * (1 - ring) + red * ring, size)
    if mode == "grey":
        grey = torch.full((3, 1, 1), float(style.grey), device=dev)
        background = _normalise(grey, mean, std)[None]
    else:
        background = _gaussian(inner, style.blur_sigma * long_side)
    return _pad(soft * inner + (1 - soft) * background, size)


def render_prompts(
    image: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    mode: PromptMode,
    style: PromptStyle = DEFAULT_STYLE,
    aspect: float = 1.0,
    fill: tuple[float, float, float] = CLIP_MEAN,
) -> list[np.ndarray]:
    """Viewable prompts at native resolution: one ``uint8`` RGB array per mask.

    Full-image modes return ``(H, W, 3)`` arrays; ``crop`` returns each crop region
    (see :func:`crop_boxes`, integer-rounded), padded with ``fill`` (0..1 scale) where it
    leaves the image. Same geometry as :func:`prompt_batch`, before resizing.
    """
    _check(image, masks, boxes, mode)
    h, w = image.shape[:2]
    long_side = max(h, w)
    out: list[np.ndarray] = []
    if mode == "crop":
        pad_color = np.array([round(255 * c) for c in fill], dtype=np.uint8)
        for x0, y0, x1, y1 in np.round(crop_boxes(masks, boxes, style.margin, aspect)).astype(int):
            canvas = np.empty((max(1, y1 - y0), max(1, x1 - x0), 3), dtype=np.uint8)
            canvas[:] = pad_color
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if sx1 > sx0 and sy1 > sy0:
                canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
            out.append(canvas)
        return out
    if mode == "blur":
        # PIL's Gaussian is an extended box blur: cost does not grow with the radius.
        radius = style.blur_sigma * long_side
        background = np.asarray(PILImage.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    elif mode == "grey":
        background = np.full_like(image, style.grey)
    width = max(1, round(style.outline_width * long_side))
    color = np.array(style.outline_color, dtype=np.uint8)
    for mask in masks:
        if mode == "outline":
            hard = torch.from_numpy(mask.astype(np.float32))[None, None]
            ring = _ring(hard, width)[0, 0].numpy() > 0.5
            prompt = image.copy()
            prompt[ring] = color
        else:
            prompt = np.where(mask[..., None], image, background)
        out.append(prompt)
    return out
