"""Item 11's messages: an image that cannot be decoded is named (not ``<_io.BytesIO ...>``),
and a disk that fills while results are written is exactly one line."""

from __future__ import annotations

import io

import pytest
from helpers_chaos import chaos_row
from PIL import Image as PILImage

from tools.errors import InputError
from tools.images import decode_image


@pytest.mark.parametrize(
    "data", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"GIF89a" + b"\xff" * 30]
)
def test_an_undecodable_image_is_named_by_its_input(data: bytes) -> None:
    with pytest.raises(InputError) as info:
        decode_image(data, name="scenes/photo-7.png")
    message = str(info.value)
    assert message.startswith("scenes/photo-7.png: ") and "BytesIO" not in message and " at 0x" not in message


@pytest.mark.slow  # a whole scorecard row (runs, child processes)
def test_the_bad_input_corpus_names_an_undecodable_image() -> None:
    said = chaos_row("bad-input corpus").details["outcomes"]["not an image"]
    assert said.startswith("failed: image ") and "not a known image format" in said and "BytesIO" not in said


def test_a_good_image_still_decodes() -> None:
    buf = io.BytesIO()
    PILImage.new("RGB", (4, 3), (10, 20, 30)).save(buf, format="PNG")
    assert decode_image(buf.getvalue(), name="ok.png").size == (3, 4)


@pytest.mark.slow  # a whole scorecard row (runs, child processes)
def test_a_full_disk_is_exactly_one_line() -> None:
    row = chaos_row("full disk on results")
    assert row.survived, row.problems
    assert len(row.details["stderr"]) == 1 and row.details["stderr"][0].startswith(
        "refseg: error: cannot write"
    )
