"""The GPU-path flags (--precision, --points-per-batch, --encoder-batch, --compile,
--compile-backend) take the one options path: shared flags -> ModelOptions -> ToolSettings
(build_runtime) -> config.json, for segment, bench run and bench suite alike."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.cli.args import episode_options
from bench.options import ModelOptions
from bench.runtime import build_runtime, describe_config, result_settings, run_settings
from tools.clip_loading import register_tiny_clip

GPU = ["--precision", "bf16", "--points-per-batch", "32", "--encoder-batch", "2", "--compile"]
GPU += ["--compile-backend", "aot_eager"]
WANT = {"precision": "bf16", "points_per_batch": 32, "encoder_batch": 2, "compile": True}
WANT |= {"compile_backend": "aot_eager"}
SPEED_ONLY = {"points_per_batch", "encoder_batch", "compile", "compile_backend"}
COMMANDS = [["segment", "i.png", "the dog"], ["bench", "run", "--out", "r"], ["bench", "suite", "--out", "s"]]


@pytest.mark.parametrize("command", COMMANDS, ids=["segment", "run", "suite"])
def test_gpu_flags_reach_the_tool_settings_and_config(command: list[str]) -> None:
    options = episode_options(build_parser().parse_args([*command, *GPU, "--weights", "random"]))
    assert {k: getattr(options.models, k) for k in WANT} == WANT
    rt = build_runtime(options)
    try:
        assert {k: getattr(rt.settings, k) for k in WANT} == WANT
        described = describe_config(rt)["settings"]
        results, run = result_settings(rt), run_settings(rt)
    finally:
        rt.close()
    assert {k: described[k] for k in WANT} == WANT
    assert results["precision"] == "bf16"  # changes outputs: part of the resume check
    assert SPEED_ONLY.isdisjoint(results)  # where and how fast: recorded under "run"
    assert {k: run[k] for k in SPEED_ONLY} == {k: WANT[k] for k in SPEED_ONLY}


def test_without_the_flags_the_defaults_are_tool_settings() -> None:
    options = episode_options(build_parser().parse_args(["bench", "run", "--out", "r"]))
    assert options.models == ModelOptions()
    rt = build_runtime(dataclasses.replace(options, models=ModelOptions(weights="random")))
    try:
        assert (rt.settings.precision, rt.settings.compile, rt.settings.encoder_batch) == ("fp32", False, 1)
        assert rt.settings.points_per_batch is None  # the tool picks one per device
    finally:
        rt.close()


def _tiny_run(out: Path, *extra: str) -> int:
    return main(
        [
            "bench", "run", "--dataset", "synthetic", "--n", "1", "--per-image", "first",
            "--weights", "random", "--tool-option", "sam_propose.config=tiny",
            "--clip-model", register_tiny_clip(), "--points-per-side", "2", "--controller", "oneshot",
            "--device", "cpu", "--quiet", "--bootstrap", "0", "--out", str(out), *extra,
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_bench_run_records_them_and_refuses_to_resume_at_another_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _tiny_run(out, "--precision", "bf16", "--points-per-batch", "3") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["results"]["settings"]["precision"] == "bf16"
    assert config["run"]["points_per_batch"] == 3 and config["run"]["encoder_batch"] == 1
    assert "points_per_batch" not in config["results"]["settings"]
    capsys.readouterr()
    assert _tiny_run(out, "--precision", "fp32") == 2  # bf16 results never pass for fp32 ones
    assert "settings.precision" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--toolset", "offline", "--precision", "bf16"], "--precision and --compile apply to sam_propose"),
        (["--toolset", "offline", "--points-per-batch", "8"], "--points-per-batch apply to sam_propose only"),
        (["--encoder-batch", "0"], "--encoder-batch and --points-per-batch must be at least 1"),
    ],
)
def test_gpu_flags_that_cannot_apply_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "run", "--dataset", "synthetic", "--n", "1", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
