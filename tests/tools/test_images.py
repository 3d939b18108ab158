from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tools.errors import InputError
from tools.images import clean_expression, decode_image, load_image, resize_mask, working_copy
from tools.types import Image


def encode(img: PILImage.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_rgb_png_round_trips_exactly(rng: np.random.Generator) -> None:
    arr = rng.integers(0, 255, (7, 9, 3), dtype=np.uint8)
    image = decode_image(encode(PILImage.fromarray(arr), "PNG"))
    np.testing.assert_array_equal(image.pixels, arr)
    assert image.digest == Image.from_array(arr).digest


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    px = decode_image(encode(PILImage.fromarray(gray, "L"), "PNG")).pixels
    assert px.shape == (4, 5, 3) and (px[..., 0] == gray).all() and (px[..., 2] == gray).all()


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red, the rest fully transparent
    px = decode_image(encode(PILImage.fromarray(rgba, "RGBA"), "PNG")).pixels
    assert tuple(px[0, 0]) == (255, 0, 0) and tuple(px[1, 1]) == (255, 255, 255)


def test_sixteen_bit_png_keeps_its_contrast() -> None:
    arr = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    px = decode_image(encode(PILImage.fromarray(arr), "PNG")).pixels
    assert px[0, 0, 0] == 0 and px[1, 1, 0] == 255 and 0 < px[1, 0, 0] < 255


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    img = PILImage.new("CMYK", (8, 6), (0, 255, 255, 0))  # red in CMYK
    px = decode_image(encode(img, "JPEG")).pixels
    assert px.shape == (6, 8, 3) and px[..., 0].mean() > 200 and px[..., 1].mean() < 60


def test_exif_rotation_is_applied() -> None:
    img = PILImage.new("RGB", (10, 4), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    px = decode_image(encode(img, "JPEG", exif=exif.tobytes())).pixels
    assert px.shape == (10, 4, 3)


def test_png_with_a_jpg_extension_is_read_by_content(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    path.write_bytes(encode(PILImage.new("RGB", (3, 2), (1, 2, 3)), "PNG"))
    assert tuple(load_image(path).pixels[0, 0]) == (1, 2, 3)


def test_one_pixel_image_is_fine() -> None:
    assert decode_image(encode(PILImage.new("RGB", (1, 1)), "PNG")).size == (1, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"\xff\xd8\xff\xe0 not really", "cannot decode"), (b"hello world", "cannot decode")],
)
def test_bad_bytes_raise_input_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_image(data, name="x.jpg")


def test_truncated_jpeg_is_an_input_error() -> None:
    data = encode(PILImage.new("RGB", (64, 64), (9, 9, 9)), "JPEG")
    with pytest.raises(InputError, match="cannot decode"):
        decode_image(data[: len(data) // 2])


def test_missing_file_and_folder_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


@pytest.mark.slow
def test_huge_image_downscales_for_models_and_masks_map_back() -> None:
    big = Image.from_array(np.zeros((10000, 10000, 3), np.uint8))
    small = working_copy(big, 2048)
    assert small.size == (2048, 2048)
    mask = np.zeros((2048, 2048), bool)
    mask[:1024] = True
    full = resize_mask(mask, big.size)
    assert full.shape == (10000, 10000) and full[:4990].all() and not full[5010:].any()


@pytest.mark.slow
def test_decompression_bomb_is_refused() -> None:
    img = PILImage.new("1", (20000, 20000))  # 400 MP, tiny on disk
    with pytest.raises(InputError, match=r"pixel limit|too large"):
        decode_image(encode(img, "PNG"))


def test_concurrent_decodes_restore_the_pil_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bench decodes in worker threads; PIL's limit is process-wide. A slow open()
    # makes the threads overlap where the limit is swapped.
    real_open, before = PILImage.open, PILImage.MAX_IMAGE_PIXELS

    def slow_open(*args: object, **kw: object) -> PILImage.Image:
        time.sleep(0.05)
        return real_open(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(PILImage, "open", slow_open)
    data = encode(PILImage.new("RGB", (8, 6)), "PNG")
    threads = [threading.Thread(target=decode_image, args=(data,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert before == PILImage.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "\x00\x07"])
def test_empty_expressions_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        clean_expression(text)


def test_expressions_are_normalised_and_bounded() -> None:
    assert clean_expression("  the\tblack\x00 dog \n") == "the black dog"
    with pytest.raises(InputError, match="characters"):
        clean_expression("dog " * 2500)
