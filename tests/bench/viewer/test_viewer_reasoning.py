"""A reasoning model's thinking is in the viewer, folded under its reply, and in `refseg trace`."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from helpers_viewer import client_for
from PIL import Image as PILImage

from bench.benchmarks.ground import expression_of, targets_of
from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer
from bench.doubles.vlm_conventions import REASONING_TOKENS, THOUGHT, ConventionVLM
from tools.offline.missed_scenes import halo_scene


def test_the_reply_shows_its_reasoning_folded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ms = halo_scene(2)
    path = tmp_path / "scene.png"
    PILImage.fromarray(ms.scene.image).save(path)
    out = tmp_path / "out"
    policy = ConventionVLM("qwen3-vl", reasoning="field", targets=targets_of([ms]))
    args = ["segment", str(path), expression_of(ms), "--toolset", "offline", "--controller", "ground"]
    with ScriptedServer(policy=policy) as srv:
        flags = ["--vlm-base-url", srv.base_url, "--vlm-profile", "qwen3-vl", "--out", str(out), "--no-cache"]
        code = main([*args, *flags])
    assert code == 0
    with client_for(out) as client:
        page = client.get("/result/0").text
    folded = page.split('<details class="reasoning">', 1)
    assert len(folded) == 2 and html.escape(THOUGHT) in folded[1].split("</details>", 1)[0]
    assert "not parsed" in folded[1].split("</summary>", 1)[0]
    capsys.readouterr()
    assert main(["trace", str(out)]) == 0
    assert f"(reasoning {REASONING_TOKENS})" in capsys.readouterr().out
