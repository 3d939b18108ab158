"""``bench.benchmarks.speed`` on the tiny real SAM and CLIP: stages, reference agreement, rank floor, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.benchmarks.speed.machine import peak_memory, resolve_device
from bench.benchmarks.speed.options import SpeedOptions
from bench.benchmarks.speed.rank_floor import loop_scores, measure_row, synthetic_candidates
from bench.benchmarks.speed.report import SpeedReport, format_speed_table
from bench.benchmarks.speed.run import run_speed
from bench.benchmarks.speed.setup import build_models, load_images, tool_settings
from tools.errors import ConfigError

TINY = {"device": "cpu", "weights": "random", "sam_model": "tiny", "clip_model": "tiny"}
SMALL = {"generated_images": 2, "generated_size": (96, 128), "points_per_side": 6}


@pytest.fixture(scope="module")
def reference_report() -> SpeedReport:
    """Default thresholds (as users run them) beside the official generator (whose RLE
    encoding of every mask is slow on CPU: one image, a 4x4 grid)."""
    options = SpeedOptions(**TINY, **{**SMALL, "generated_images": 1, "points_per_side": 4}, reference=True)
    return run_speed(options)


@pytest.fixture(scope="module")
def open_report(tmp_path_factory: pytest.TempPathFactory) -> SpeedReport:
    """Filters off, two images through one encoder forward, the rank floor, JSON."""
    path = tmp_path_factory.mktemp("speed") / "speed.json"
    options = SpeedOptions(
        **TINY,
        **SMALL,
        thresholds="open",
        encoder_batch=2,
        rank_floor=True,
        rank_candidates=(4, 16),
        rank_repeats=2,
        json_path=path,
    )
    return run_speed(options)


@pytest.mark.slow
def test_every_stage_is_timed_per_image(open_report: SpeedReport) -> None:
    r = open_report
    assert set(r.stage_seconds) == {"encode", "decode", "postprocess", "rank_image", "rank_text"}
    assert all(v > 0 for v in r.stage_seconds.values()), r.stage_seconds
    assert [i.proposals for i in r.images] == [64, 64]  # filters off: max_proposals each
    assert all(i.propose_seconds is None for i in r.images)  # concurrent: no per-image split
    assert sum(r.stage_seconds.values()) <= r.seconds_per_image * 1.05
    assert r.images_per_second == pytest.approx(2 / r.wall_seconds)
    assert r.points_per_batch == 64 and r.device == "cpu"
    assert r.peak_memory is not None and r.peak_memory.what == "process_peak_rss"


@pytest.mark.slow
def test_the_official_generator_agrees_with_and_without_filters(reference_report: SpeedReport) -> None:
    ref = reference_report.reference
    assert ref is not None and ref.official_seconds_per_image > 0 and ref.ours_seconds_per_image > 0
    assert ref.speedup == pytest.approx(ref.official_seconds_per_image / ref.ours_seconds_per_image)
    default, opened = ref.agreements
    # Random weights: no mask passes the default filters on either side, so nothing was compared.
    assert default.thresholds == "default" and default.ours == default.official == 0 and default.agree is None
    # Filters and NMS off: 4x4 points x 3 masks, all bit-identical to the official ones.
    assert opened.thresholds == "open" and opened.agree
    assert opened.ours == opened.exact == opened.official == 48
    assert opened.min_iou == 1.0 and opened.mean_iou == 1.0
    assert all(i.propose_seconds is not None and i.propose_seconds > 0 for i in reference_report.images)


@pytest.mark.slow
def test_table_and_json_say_the_same(open_report: SpeedReport, reference_report: SpeedReport) -> None:
    table = format_speed_table(open_report)
    for text in ("SAM encode", "SAM decode", "SAM post-process", "rank: image side", "rank: text side"):
        assert text in table
    assert "process peak RSS (VmHWM reset before; includes loaded models)" in table
    assert "rank at the compute floor" in table and "random weights" in table
    ref_table = format_speed_table(reference_report)
    assert "masks agree, open thresholds: yes (48 of 48 refseg masks bit-identical" in ref_table
    assert "(official / refseg)" in ref_table
    data = json.loads(Path(open_report.options["json_path"]).read_text())
    assert data["stage_seconds"] == pytest.approx(open_report.stage_seconds)
    assert data["images_per_second"] == pytest.approx(open_report.images_per_second)
    assert data["peak_memory"]["what"] == "process_peak_rss"
    assert [row["candidates"] for row in data["rank_floor"]] == [4, 16]
    assert all(row["scores_equal"] and row["ratio"] > 0 for row in data["rank_floor"])
    assert data["options"]["encoder_batch"] == 2 and data["reference"] is None


@pytest.fixture(scope="module")
def tiny_models():
    options = SpeedOptions(**TINY, **SMALL)
    return build_models(tool_settings(options, "cpu")), load_images(options)[0].image


@pytest.mark.parametrize("n", [16, 64, 256])
def test_clip_rank_scores_equal_the_floor(tiny_models, n: int) -> None:
    models, image = tiny_models
    row = measure_row(models, image, n, "crop", "the dog", repeats=1, loop=False)
    assert row.scores_equal and row.candidates == n
    assert row.floor_seconds > 0 and row.clip_rank_seconds > 0 and row.loop_seconds is None


@pytest.mark.slow
def test_the_per_candidate_loop_ranks_alike(tiny_models) -> None:
    models, image = tiny_models
    props = synthetic_candidates(image, 6)
    looped = loop_scores(models.clip, image, props, "crop", "a photo of the dog", "fp32")
    row = measure_row(models, image, 6, "crop", "the dog", repeats=1, loop=True)
    assert looped.shape == (6,) and row.loop_seconds is not None and row.loop_seconds > 0
    # Other resizing (PIL at full resolution, centre crop): close to the floor, not equal.
    assert row.loop_max_abs_diff is not None and 0 < row.loop_max_abs_diff < 0.2


def test_synthetic_candidates_are_seeded_and_inside_the_image(tiny_models) -> None:
    _, image = tiny_models
    a, b = synthetic_candidates(image, 5, seed=1), synthetic_candidates(image, 5, seed=1)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.masks.shape == (5, *image.size) and (a.areas > 0).all()


def test_peak_memory_sees_an_allocation_inside_the_block() -> None:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux /proc")
    with peak_memory("cpu") as watch:
        block = np.ones(50_000_000, dtype=np.float32)  # 200 MB, touched
        del block
    lines = status.read_text().splitlines()
    rss = next(int(line.split()[1]) * 1024 for line in lines if line.startswith("VmRSS"))
    assert watch.peak is not None and watch.peak.what == "process_peak_rss"
    assert watch.peak.bytes >= rss + 150_000_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"points_per_side": 0}, "points per side must be at least 1, got 0"),
        ({"points_per_side": 65}, "points per side must be at most 64"),
        ({"encoder_batch": 0}, "encoder batch must be at least 1"),
        ({"points_per_batch": 0}, "points per batch must be at least 1"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"rank_candidates": (16, 0)}, "rank candidates must be at least 1"),
        ({"rank_modes": ("sketch",)}, "unknown visual prompt mode 'sketch'"),
        ({"generated_images": 0}, "generated images must be at least 1"),
        ({"generated_size": (50, 50)}, "at least 96x96"),
        ({"query": "  "}, "the query is empty"),
    ],
)
def test_bad_options_are_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        SpeedOptions(**{**TINY, **changes})  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_devices_are_resolved_or_refused() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is visible here; use --device cpu"):
            resolve_device("cuda")


@pytest.mark.slow
def test_report_json_has_no_nan(open_report: SpeedReport) -> None:
    text = Path(open_report.options["json_path"]).read_text()
    assert "NaN" not in text and not math.isnan(open_report.images_per_second)
