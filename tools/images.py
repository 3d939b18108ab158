"""Image decoding and normalisation: any common file becomes an RGB ``uint8`` :class:`Image`.

Grayscale, palette, RGBA, 16-bit, float and CMYK inputs are converted; EXIF rotation is
applied; huge images are accepted up to ``MAX_PIXELS`` and downscaled for the models by
:func:`working_copy` (masks are mapped back to full size by :func:`resize_mask`).
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from tools.errors import InputError
from tools.types import Image

MAX_PIXELS = 300_000_000  # a 10000x10000 photo is fine; a decompression bomb is not
DEFAULT_MAX_SIDE = 2048
MAX_EXPRESSION_CHARS = 1000
_PIL_LIMIT_LOCK = threading.Lock()


def _to_rgb_array(img: PILImage.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit grayscale: rescale the actual range to 0..255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = arr.round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent pixels do not turn black.
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(background, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr)


_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def decode_image(data: bytes, name: str = "image") -> Image:
    """Decode encoded image bytes (JPEG, PNG, WebP, ...) into an RGB :class:`Image`.

    Raises:
        InputError: empty, truncated, corrupt, unsupported or oversized input.
    """
    if not data:
        raise InputError(f"{name}: the file is empty (0 bytes); pass a JPEG or PNG image")
    try:
        # PIL's pixel limit and the warnings filters are process-wide and the bench decodes
        # in worker threads: swap them under a lock, only around open() (the header read,
        # where PIL checks the limit), so threads neither undo each other's swap nor leave
        # the raised limit behind.
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            old_limit = PILImage.MAX_IMAGE_PIXELS
            PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
            try:
                img: PILImage.Image = PILImage.open(io.BytesIO(data))
            finally:
                PILImage.MAX_IMAGE_PIXELS = old_limit
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise InputError(f"{name}: {w}x{h} is over the {MAX_PIXELS:,}-pixel limit; downscale it first")
        img.load()
        img = ImageOps.exif_transpose(img) or img
        arr = _to_rgb_array(img)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # PIL names the stream it read (<_io.BytesIO object at 0x...>): the input is `name`.
        detail = "not a known image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
        detail = _BUFFER_REPR.sub("the data", detail)
        raise InputError(
            f"{name}: cannot decode the image ({detail}); is it a complete JPEG/PNG file?"
        ) from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise InputError(f"{name}: the image is too large to decode safely") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{name}: the image has no pixels")
    return Image.from_array(arr)


def load_image(path: str | Path) -> Image:
    """Read and decode an image file; errors name the path and what to do."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder; pass an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read the file ({exc.strerror})") from None
    return decode_image(data, name=str(p))


def size_text(height: int, width: int) -> str:
    """An image size as people read it, width first (``800x534`` for an 800-wide photo);
    arrays and records hold ``(H, W)``. Every size shown to a person goes through here."""
    return f"{int(width)}x{int(height)}"


def hw_text(size: object) -> str:
    """``size_text`` of an ``[H, W]`` record field (``?`` when it is not two numbers)."""
    if isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int | float) for v in size):
        return size_text(int(size[0]), int(size[1]))
    return "?"


def downscaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(H, W)`` of an image of ``size = (H, W)`` after :func:`downscale` to ``max_side``."""
    h, w = size
    if max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def downscale(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """``(H, W, 3) uint8`` pixels with the longer side at most ``max_side`` (bilinear; unchanged
    when already small enough)."""
    h, w = pixels.shape[:2]
    new_h, new_w = downscaled_size((h, w), max_side)
    if (new_h, new_w) == (h, w):
        return pixels
    small = PILImage.fromarray(pixels).convert("RGB").resize((new_w, new_h), PILImage.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)


def resize_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3) uint8`` pixels resized to exactly ``size = (H, W)`` (bicubic, as Qwen-VL's
    processor resizes; unchanged when already that size)."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    img = PILImage.fromarray(pixels).convert("RGB").resize((size[1], size[0]), PILImage.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def working_copy(image: Image, max_side: int = DEFAULT_MAX_SIDE) -> Image:
    """The image the models see: downscaled so its longer side is at most ``max_side``."""
    if max(image.size) <= max_side:
        return image
    return Image.from_array(downscale(image.pixels, max_side))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a ``(h, w) bool`` mask to ``size = (H, W)``."""
    if mask.shape == tuple(size):
        return mask.astype(bool, copy=False)
    pil = PILImage.fromarray(mask.astype(np.uint8) * 255)
    out = pil.resize((size[1], size[0]), PILImage.Resampling.NEAREST)
    return np.asarray(out) > 127


def clean_expression(expression: str) -> str:
    """Normalise a referring expression; empty or absurd ones raise :class:`InputError`."""
    if not isinstance(expression, str):
        raise InputError("the expression must be text")
    text = "".join(ch if ch.isprintable() else " " for ch in expression)
    text = " ".join(text.split())
    if not text:
        raise InputError('the expression is empty; describe the object, e.g. "the black dog"')
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InputError(
            f"the expression has {len(text):,} characters; keep it under "
            f"{MAX_EXPRESSION_CHARS} (a short description of one object)"
        )
    return text
