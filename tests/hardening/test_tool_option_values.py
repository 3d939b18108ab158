"""Item 9: tool options are validated in full when the run is set up, in one line each, before
any model is built or any example runs: SAM configs (positive, bounded, consistent sizes),
CLIP prompt styles (types, ranges, colours), ``--points-per-side`` (1 to 64)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from helpers_chaos import chaos_row

from bench.cli import main
from tools.base import ToolSettings
from tools.clip_rank import ClipRank
from tools.errors import ConfigError
from tools.sam_loading import SAM_CONFIGS, TINY_SAM_CONFIG
from tools.sam_propose import SamPropose

TINY = {k: (list(v) if isinstance(v, tuple) else v) for k, v in TINY_SAM_CONFIG.__dict__.items()}


def _check(tool: Any, options: dict[str, Any]) -> None:
    tool.check_options(ToolSettings(options={tool.name: options}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoder_embed_dim": -32}, "encoder_embed_dim"),
        ({"encoder_depth": 0}, "encoder_depth"),
        ({"img_size": math.nan}, "img_size"),
        ({"img_size": 128.0}, "img_size"),
        ({"encoder_embed_dim": 1_000_000}, "encoder_embed_dim"),
        ({"encoder_embed_dim": 2048, "encoder_depth": 64, "encoder_num_heads": 16}, "parameters"),
        ({"encoder_num_heads": 3}, "divide"),
        ({"encoder_global_attn_indexes": [5]}, "encoder_global_attn_indexes"),
        ({"patch_size": 48}, "patch_size"),
        ({"mask_in_chans": 6}, "mask_in_chans"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_a_bad_sam_config_is_one_line_at_set_up(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _check(SamPropose, {"config": {**TINY, **change}})
    assert str(info.value).startswith("tool sam_propose: option config:") and "\n" not in str(info.value)


def test_good_sam_configs_pass() -> None:
    for config in ("tiny", "vit_b", TINY, {**TINY, "img_size": 256}):
        _check(SamPropose, {"config": config})
    assert len(SAM_CONFIGS) == 3


@pytest.mark.parametrize(
    ("style", "message"),
    [
        ({"grey": "x"}, "style.grey"),
        ({"grey": -5}, "style.grey"),
        ({"grey": 256}, "style.grey"),
        ({"outline_width": 1e9}, "style.outline_width"),
        ({"outline_color": "red"}, "style.outline_color"),
        ({"outline_color": [255, 0]}, "style.outline_color"),
        ({"outline_color": [300, 0, 0]}, "style.outline_color"),
        ({"margin": math.nan}, "style.margin"),
        ({"blur_sigma": 0}, "style.blur_sigma"),
        ({"thickness": 3}, "style.thickness"),
    ],
)
def test_a_bad_clip_style_is_one_line_at_set_up(style: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(ClipRank, {"style": style})


def test_good_clip_styles_pass() -> None:
    _check(
        ClipRank, {"style": {"grey": 0, "outline_color": [0, 128, 255], "margin": 0.3, "outline_width": 0.02}}
    )


RUN = [
    "bench",
    "run",
    "--dataset",
    "synthetic",
    "--n",
    "1",
    "--quiet",
    "--device",
    "cpu",
    "--weights",
    "random",
]


@pytest.mark.parametrize(
    "flags",
    [
        ["--points-per-side", "100000"],
        ["--tool-option", 'sam_propose.config={"encoder_embed_dim": -1}'],
        ["--tool-option", 'clip_rank.style={"grey": "x"}'],
    ],
)
def test_the_cli_refuses_before_any_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    code = main([*RUN, *flags, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("refseg: error:") and "\n" not in err
    assert not (tmp_path / "run" / "samples.jsonl").exists()  # nothing ran


@pytest.mark.slow  # a whole scorecard row (runs, child processes)
def test_tool_options_row_survives() -> None:
    row = chaos_row("tool options")
    assert row.survived, row.problems
    assert row.injected == row.detected
