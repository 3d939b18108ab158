"""``--vlm-profile`` presets and their overrides; the Qwen2.5-VL preset sends the view on the
28-pixel grid its processor would resize it to, so its pixel boxes land where it points."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers_conventions import run_family

from agent.vlm_profile import PROFILES, ProfileChoice, resolve_profile
from bench.doubles.vlm_conventions import received_sizes
from tools.coords import Frame, box_iou
from tools.errors import ConfigError
from tools.offline.missed_scenes import halo_scene


def test_presets_resolve_and_explicit_flags_win() -> None:
    assert resolve_profile() == PROFILES["generic"] and PROFILES["generic"].coords == "pixels"
    gemini = resolve_profile("gemini")
    assert (gemini.coords, gemini.reply_format, gemini.json_schema) == ("norm1000-yx", "box_2d", True)
    qwen = resolve_profile("qwen2.5-vl", tool_calls="text", max_pixels=200_704)
    assert (qwen.coords, qwen.view_grid, qwen.tool_calls, qwen.max_pixels) == ("pixels", 28, "text", 200_704)
    assert ProfileChoice("gemini", coords="norm1000", json_schema=False).resolve() == replace(
        gemini, coords="norm1000", json_schema=False
    )
    with pytest.raises(ConfigError, match=r"--vlm-profile must be one of generic, qwen2\.5-vl"):
        ProfileChoice("llava")
    with pytest.raises(ConfigError, match="--vlm-tool-calls must be one of native, text, auto"):
        ProfileChoice(tool_calls="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--vlm-max-pixels must be at least"):
        ProfileChoice("qwen2.5-vl", max_pixels=100)


def test_view_sizing_follows_the_grid_and_its_pixel_budget() -> None:
    qwen = PROFILES["qwen2.5-vl"]
    assert qwen.view_frame(Frame(768, 512)).wh == (756, 504)
    assert replace(qwen, max_pixels=200_704).view_frame(Frame(768, 512)).wh == (532, 364)  # 256*28*28
    assert PROFILES["qwen3-vl"].view_frame(Frame(768, 512)).wh == (768, 512)  # normalised: no resize
    assert qwen.view_frame(Frame(5, 300)).wh == (5, 300)  # the processor refuses it too: sent as is


def _box_iou_in_trace(trace: Path, truth: np.ndarray) -> float:
    prompt = next(e for e in map(json.loads, trace.read_text().splitlines()) if e["event"] == "prompt")
    return box_iou(prompt["box_image"], truth)


@pytest.mark.slow
def test_the_qwen25_preset_sends_the_view_on_the_grid_and_its_boxes_land(tmp_path: Path) -> None:
    """A 1001x300 scene is shown at 768x230; Qwen2.5-VL would see 756x224 and answer in it."""
    ms = halo_scene(1, size=(300, 1001))
    on_grid, off_grid = tmp_path / "grid.jsonl", tmp_path / "plain.jsonl"
    qwen = run_family("ground", "qwen2.5-vl", PROFILES["qwen2.5-vl"], scenes_=[ms], trace=on_grid)
    assert received_sizes(qwen.requests) == [(756, 224)]  # what the server decoded
    assert "Image: 756x224 pixels." in qwen.requests[0].text_parts()[-1]
    assert qwen.ious[0] >= 0.9 and _box_iou_in_trace(on_grid, ms.box_xyxy) >= 0.97
    plain = run_family("ground", "qwen2.5-vl", PROFILES["generic"], scenes_=[ms], trace=off_grid)
    assert received_sizes(plain.requests) == [(768, 230)]
    # The same model, its view off the grid: every box is shifted and scaled by its resize.
    assert _box_iou_in_trace(off_grid, ms.box_xyxy) < 0.8  # measured 0.67 (0.99 on the grid)
