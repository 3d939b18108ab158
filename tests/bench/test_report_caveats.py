"""Reports say what their numbers do not show by themselves: rough intervals over few images,
paired comparisons of runs of different sizes, slow rates with their digits, and a gallery
title that stays clear of the captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_runner import run, synthetic

from bench.cli import main
from bench.metrics import FEW_IMAGES, rough_interval_note
from bench.options import DataSpec
from bench.report.cases import gallery_figure
from bench.report.paired import paired_line
from bench.report.tables import rate_text


def test_rates_keep_their_digits() -> None:
    assert [rate_text(v) for v in (55.71, 4.2, 0.42, 0.0041, None)] == ["55.7", "4.20", "0.42", "0.0041", "—"]


def test_few_images_make_a_rough_interval() -> None:
    assert rough_interval_note(3) == "only 3 images: a rough interval"
    assert rough_interval_note(1) == "only 1 image: a rough interval"
    assert rough_interval_note(FEW_IMAGES) == "" and rough_interval_note(None) == ""


def _result(**changes: object) -> dict[str, object]:
    base = {"n_images": 40, "n_expressions": 92, "only_a": 0, "only_b": 0, "diff": 0.05, "ci": [0.01, 0.09]}
    base |= {"improved": 10, "degraded": 2, "unchanged": 80, "tolerance": 0.01, "label": "mIoU"}
    return base | changes


def test_a_paired_line_says_what_it_left_out_and_when_its_interval_is_rough() -> None:
    plain = paired_line("oneshot", "loop", _result())
    assert plain.endswith("of 92 paired expressions") and "rough" not in plain
    uneven = paired_line("oneshot", "loop", _result(only_a=600, n_images=3))
    assert "(95% CI, 3 images resampled; only 3 images: a rough interval)" in uneven
    assert uneven.endswith("(only the expressions both runs hold: oneshot has 692, loop 92)")


@pytest.mark.slow
def test_report_of_runs_of_different_sizes_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = synthetic(2)
    one_image = [ex for ex in examples if ex.image_id == examples[0].image_id]
    run(tmp_path / "big", None, examples, episode={"controller": "oneshot"}, bootstrap=50)
    run(tmp_path / "small", None, one_image, spec=DataSpec("synthetic", n=1), bootstrap=50)
    capsys.readouterr()
    assert (
        main(
            ["bench", "report", str(tmp_path / "big"), str(tmp_path / "small"), "--out", str(tmp_path / "r")]
        )
        == 0
    )
    printed = capsys.readouterr().out
    n_small, n_big = len(one_image), len(examples)
    held = f"both runs hold: big has {n_big}, small {n_small})"
    assert f"of {n_small} paired expressions (only the expressions {held}" in printed
    report = (tmp_path / "r" / "report.md").read_text()
    assert (
        f"> small vs big: paired over the {n_small} expressions both runs hold (big has {n_big}, " in report
    )
    assert (
        f"> 95% intervals over fewer than {FEW_IMAGES} images are rough" in report
        and "small (1 images)" in report
    )


@pytest.mark.slow
@pytest.mark.parametrize("n_rows", [1, 6])
def test_the_gallery_title_stays_clear_of_the_first_row_captions(n_rows: int) -> None:
    pixels = np.full((240, 320, 3), 100, np.uint8)
    mask = np.zeros((240, 320), bool)
    mask[50:100, 50:100] = True
    long_queries = [
        "q",
        "the red square at the left side of the picture near the circle",
        "a photo of a red square",
    ]
    row = {"pixels": pixels, "gt": mask, "mask_a": mask, "mask_b": mask, "iou_a": 0.1, "iou_b": 0.9}
    row |= {"sentence": "the small red square on the left of the big blue circle", "queries_a": ["q"]}
    row |= {"queries_b": long_queries}
    fig = gallery_figure(
        [row] * n_rows, ("oneshot", "loop_iter3"), "improved: loop_iter3 vs oneshot (6 of 13)"
    )
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    title = fig._suptitle.get_window_extent(renderer)  # type: ignore[union-attr]
    captions = [ax.title.get_window_extent(renderer) for ax in fig.axes[:4]]
    assert not any(c.overlaps(title) for c in captions)
    assert all(c.y1 <= fig.bbox.y1 for c in captions) and title.y1 <= fig.bbox.y1
