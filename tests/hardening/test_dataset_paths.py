"""Data-set rows without samples and samples without sentences are counted and
reported; image paths resolve only inside the data set's own folder unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.data.files import image_path
from tools.errors import InputError


def test_dropped_rows_are_reported_and_outside_paths_refused() -> None:
    row = chaos_row("dataset rows and paths")
    assert row.survived, row.problems
    assert row.details["dropped"] == {"rows_without_samples": 1, "samples_without_sentences": 1}
    assert row.failed == 2 and row.exit_code == 1  # the two paths outside the folder


def test_image_paths_stay_inside_the_data_set_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"x")
    (root / "img" / "link.png").symlink_to(tmp_path / "secret")
    assert image_path("img/a.png", root, False, "image 1") == (root / "img" / "a.png").resolve()
    for path in ("../secret", str(tmp_path / "secret"), "img/link.png", "/etc/hostname"):
        with pytest.raises(InputError, match="outside the data set folder"):
            image_path(path, root, False, "image 1")
    assert image_path("../secret", root, True, "image 1") == root / "../secret"
    with pytest.raises(InputError, match="allow-image-paths-outside"):
        image_path("x.png", None, False, "image 1")  # a hub data set has no folder
