"""The VLM paths through the real CLI: ``--controller agent`` and ``--refiner vlm`` against a
local OpenAI-compatible server, then ``refseg trace`` on what they wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer, Status, Text
from tools.offline.scenes import generate_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from helpers_agent_ctl import policy  # the scripted agent of the agent tests

PLANTED_KEY = "sk-planted-cli-key-0123456789"


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, str]:
    s = generate_scene(0)
    path = tmp_path / "scene.png"
    PILImage.fromarray(s.image).save(path)
    return path, "the scarlet tile"  # no word the attribute ranker knows: an unsure ranking


def test_agent_segment_then_trace_shows_each_turn(
    scene: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REFSEG_VLM_API_KEY", PLANTED_KEY)
    path, expression = scene
    out = tmp_path / "out"
    with ScriptedServer(policy=policy) as srv:
        code = main(["segment", str(path), expression, "--toolset", "offline", "--controller", "agent",
                     "--no-agent-warm-start", "--vlm-base-url", srv.base_url, "--out", str(out)])  # fmt: skip
        n_requests = len(srv.requests)
        auth = srv.requests[0].headers.get("authorization", "")
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] in ("agent_submit", "guard") and result["turns"] == n_requests >= 2
    assert result["costs"]["vlm"]["calls"] == n_requests
    assert result["config"]["vlm"]["base_url"] == srv.base_url
    assert auth == f"Bearer {PLANTED_KEY}"  # the key was sent ...
    written = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.parent.name == "vlm_images" for f in written)  # the images shown are kept
    for f in written:  # ... and the key is written nowhere
        assert PLANTED_KEY.encode() not in f.read_bytes(), f.name
    capsys.readouterr()
    assert main(["trace", str(out)]) == 0
    tree = capsys.readouterr().out
    assert tree.count("turn ") >= n_requests - 1 and "region_propose" in tree and "stop=" in tree
    assert PLANTED_KEY not in tree


def test_loop_with_vlm_refiner_uses_the_vlm_rewrite(scene: tuple[Path, str], tmp_path: Path) -> None:
    path, expression = scene
    reply = Text(json.dumps({"query": "the red square", "rationale": "colour and shape"}))
    with ScriptedServer(policy=lambda _req: reply) as srv:
        code = main(["segment", str(path), expression, "--toolset", "offline", "--refiner", "vlm",
                     "--vlm-base-url", srv.base_url, "--out", str(tmp_path / "o")])  # fmt: skip
        requests = list(srv.requests)
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert code == 0 and requests, "the refiner never asked the VLM"
    assert result["queries"][:2] == [expression, "the red square"]
    assert result["costs"]["refine_query"]["tokens_in"] > 0
    assert any(u.startswith("data:image/jpeg;base64,") for u in requests[0].image_urls())


def test_vlm_refiner_outage_falls_back_without_losing_the_answer(
    scene: tuple[Path, str], tmp_path: Path
) -> None:
    path, expression = scene
    with ScriptedServer(policy=lambda _req: Status(500, "down")) as srv:
        code = main(["segment", str(path), expression, "--toolset", "offline", "--refiner", "vlm",
                     "--vlm-base-url", srv.base_url, "--vlm-max-retries", "1", "--vlm-timeout", "2",
                     "--out", str(tmp_path / "o")])  # fmt: skip
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    # The answer is kept (the best ranking so far), and the exit code says it is not the VLM's.
    assert code == 5 and result["stop_reason"] == "fallback" and result["chosen"] >= 0
    assert any("refiner failed" in n for n in result["notes"])
