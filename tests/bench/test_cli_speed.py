"""``refseg bench speed`` end to end on the tiny models, and its bad-input behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.cli import build_parser, main
from bench.cli.speed import speed_options

TINY = ["--device", "cpu", "--weights", "random", "--sam-model", "tiny", "--clip-model", "tiny"]


def test_speed_prints_the_table_and_writes_json(
    real_image_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "speed.json"
    args = [*TINY, "--points-per-side", "4", "--thresholds", "open", "--max-side", "320", "--json", str(out)]
    assert main(["bench", "speed", str(real_image_path), *args]) == 0
    printed = capsys.readouterr().out
    assert "SAM encode" in printed and "rank: text side" in printed and f"json: {out}" in printed
    assert "dogs.jpg 320x180" in printed  # the photo, downscaled to --max-side
    data = json.loads(out.read_text())
    assert data["images"][0]["name"] == "dogs.jpg" and data["images"][0]["proposals"] == 48
    assert data["options"]["points_per_side"] == 4 and data["options"]["max_side"] == 320


def test_arguments_become_one_options_value() -> None:
    args = build_parser().parse_args(
        ["bench", "speed", *TINY, "--precision", "bf16", "--compile", "--encoder-batch", "4",
         "--points-per-batch", "128", "--rank-floor", "--rank-candidates", "16,64", "--rank-modes",
         "crop,grey", "--no-rank-loop", "--no-warmup", "--images", "3"]
    )  # fmt: skip
    options = speed_options(args)
    assert (options.precision, options.compile, options.encoder_batch) == ("bf16", True, 4)
    assert options.points_per_batch == 128 and options.rank_candidates == (16, 64)
    assert options.rank_modes == ("crop", "grey") and options.rank_loop is False
    assert options.warmup is False and options.generated_images == 3 and options.images == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--points-per-side", "0"], "points per side must be at least 1, got 0"),
        (["--encoder-batch", "0"], "encoder batch must be at least 1"),
        (["photo.jpg", "--images", "3"], "give photos or --images N"),
        (["missing.jpg"], "missing.jpg: no such file"),
        (["--rank-modes", "crop,sketch"], "unknown visual prompt mode 'sketch'"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "speed", *TINY, *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("refseg: error:")


def test_missing_weights_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "speed", "--device", "cpu", "--checkpoint-dir", str(tmp_path), "--images", "1"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "refseg weights download sam --model vit_b" in err and "--weights random" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "speed", "--device", "cuda", "--weights", "random", "--images", "1"]) != 0
    assert "no CUDA device is visible here; use --device cpu" in capsys.readouterr().err


def test_bad_counts_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "speed", *TINY, "--rank-candidates", "16,many"])
    assert "expected comma-separated counts like 16,64,256" in capsys.readouterr().err
