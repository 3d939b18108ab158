"""``refseg bench speed --sam-model sam3``: SAM 3's stages, a second query on the kept encoding,
SAM 1's official generator beside it (tiny architectures, random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.cli.speed import speed_options

TINY = ["--device", "cpu", "--weights", "random", "--sam-model", "sam3", "--sam3-size", "tiny"]


@pytest.mark.slow
def test_speed_times_sam3s_stages_beside_sam1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "speed.json"
    args = [*TINY, "--images", "1", "--reference", "--reference-sam-model", "tiny", "--points-per-side", "4"]
    assert main(["bench", "speed", *args, "--thresholds", "open", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("vision encode", "text encode", "detector + mask decode", "post-process", "SAM 1 tiny"):
        assert label in printed
    data = json.loads(out.read_text())
    assert set(data["stage_seconds"]) == {"vision_encode", "text_encode", "detect", "postprocess"}
    assert data["stage_seconds"]["vision_encode"] > 0 and data["requery_stage_seconds"]["vision_encode"] == 0
    assert data["requery_stage_seconds"]["detect"] > 0  # the second query runs the detector again
    assert data["images"][0]["instances"] > 0  # open thresholds: every query slot is post-processed
    assert data["reference"]["model"] == "tiny" and data["reference"]["seconds_per_image"] > 0
    assert data["ratio_to_reference"] == pytest.approx(
        data["seconds_per_image"] / data["reference"]["seconds_per_image"]
    )
    assert data["options"]["sam3_size"] == "tiny" and data["parameters"] > 1_000_000


def test_the_sam3_flags_become_options() -> None:
    ns = build_parser().parse_args(
        ["bench", "speed", *TINY, "--precision", "bf16", "--reference-sam-model", "vit_h"]
    )
    options = speed_options(ns)
    assert (options.sam_model, options.sam3_size, options.precision) == ("sam3", "tiny", "bf16")
    assert options.reference_sam_model == "vit_h" and options.sam3_checkpoint is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rank-floor"], "drop it with --sam-model sam3"),
        (["--reference-sam-model", "vit_x"], "--reference-sam-model must be one of"),
    ],
)
def test_bad_sam3_speed_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "speed", *TINY, "--images", "1", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
