"""``refseg segment IMAGE "EXPR" --controller ground --vlm-base-url URL`` against the oracle
VLM, then ``refseg trace``: the box shows in the VLM's view and in the original image."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from bench.benchmarks.ground import expression_of, targets_of
from bench.cli import main
from bench.doubles.oracle_vlm import OracleVLM
from bench.doubles.scripted_server import ScriptedServer
from tools.offline.missed_scenes import halo_scene


@pytest.mark.slow
@pytest.mark.parametrize("coords", ["pixels", "norm1000"])
def test_segment_with_ground_then_trace_shows_both_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], coords: str
) -> None:
    ms = halo_scene(1, size=(300, 1001))  # the VLM sees it at 768x230
    path = tmp_path / "scene.png"
    PILImage.fromarray(ms.scene.image).save(path)
    out = tmp_path / "out"
    with ScriptedServer(policy=OracleVLM(targets_of([ms]))) as srv:
        args = ["segment", str(path), expression_of(ms), "--toolset", "offline", "--controller", "ground"]
        code = main([*args, "--vlm-base-url", srv.base_url, "--vlm-coords", coords, "--out", str(out)])
        assert len(srv.requests) == 1
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "grounded" and result["config"]["vlm"]["profile"]["coords"] == coords
    assert result["candidates"][0]["origin"] == "region_prompt:box"
    np.testing.assert_allclose(result["candidates"][0]["box_xyxy"][:2], ms.box_xyxy[:2], atol=1.5)
    mask = np.asarray(PILImage.open(out / "mask.png")) > 0
    assert (mask & ms.target.mask).sum() / (mask | ms.target.mask).sum() > 0.95
    capsys.readouterr()
    assert main(["trace", str(out)]) == 0
    tree = capsys.readouterr().out
    assert "ground: VLM asked for the box (found)" in tree
    line = next(ln for ln in tree.splitlines() if "prompt region_prompt: box" in ln)
    assert f"(VLM view 768x230 {coords})" in line and "(image 1001x300)" in line
    in_image = [float(v) for v in re.search(r"= \[([^\]]+)\] \(image", line).group(1).split(",")]  # type: ignore[union-attr]
    np.testing.assert_allclose(in_image, ms.box_xyxy, atol=0.5)
    assert "ground choice: drawn" in tree and "confirmed: chosen" in tree and "from region_prompt:box" in tree
