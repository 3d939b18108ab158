"""``refseg segment`` output folders in the viewer, with an agent run against a local VLM server."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_viewer import client_for, png, text_of
from PIL import Image as PILImage

from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer
from bench.rle import decode_rle
from tools.offline.scenes import generate_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))
from helpers_agent_ctl import policy


@pytest.fixture(scope="module")
def segment_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scene segmented by the agent (and one-shot beside it) against a scripted VLM."""
    root = tmp_path_factory.mktemp("segment")
    PILImage.fromarray(generate_scene(0).image).save(root / "scene0.png")
    out = root / "out"
    with ScriptedServer(policy=policy) as srv:
        code = main(["segment", str(root / "scene0.png"), "the scarlet tile", "--compare",
                     "--toolset", "offline", "--no-cache", "--controller", "agent", "--no-agent-warm-start",
                     "--vlm-base-url", srv.base_url, "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_index_lists_every_result(segment_out: Path) -> None:
    with client_for(segment_out) as client:
        page = client.get("/")
    text = text_of(page.text)
    assert page.status_code == 200 and "Segment output" in text
    assert "scene0/agent" in text and "scene0/oneshot" in text


def test_result_page_pictures_and_agent_timeline(segment_out: Path) -> None:
    with client_for(segment_out) as client:
        page = client.get("/result/0")  # scene0/agent, in path order
        overlay = client.get("/result/0/overlay.png")
        mask = client.get("/result/0/mask.png")
        other = client.get("/result/0/result.png")
        beyond = client.get("/result/2")
    result = json.loads((segment_out / "scene0" / "agent" / "result.json").read_text())
    assert overlay.content == (segment_out / "scene0" / "agent" / "overlay.png").read_bytes()
    assert mask.content == (segment_out / "scene0" / "agent" / "mask.png").read_bytes()
    assert other.status_code == 404 and beyond.status_code == 404
    text = text_of(page.text)
    assert result["stop_reason"] in text and "scarlet tile" in text
    timeline = page.text[page.text.index('data-testid="timeline"') :]
    assert timeline.count('<span class="badge vlm">') == result["costs"]["vlm"]["calls"] >= 2
    assert timeline.count('<span class="badge turn">') >= 1 and "region_propose" in timeline
    assert f"tokens {result['costs']['vlm']['tokens_in'] // result['costs']['vlm']['calls']}" in timeline


def test_result_page_ranking_steps_and_vlm_messages(segment_out: Path) -> None:
    folder = segment_out / "scene0" / "agent"
    result = json.loads((folder / "result.json").read_text())
    scene = generate_scene(0).image
    assert result["image"] == str((segment_out.parent / "scene0.png").resolve())
    steps = result["rank_steps"]
    assert steps and all(
        decode_rle(c["mask"]).shape == scene.shape[:2] for s in steps for c in s["candidates"]
    )
    with client_for(segment_out) as client:
        page = client.get("/result/0")
        thumb = client.get("/result/0/candidate.png", params={"step": 0, "cand": 0})
        missing = client.get("/result/0/candidate.png", params={"step": len(steps), "cand": 0})
        sources = re.findall(r'class="vlm-img" alt="image shown to the VLM" src="([^"]+)"', page.text)
        images = [client.get(src.replace("&amp;", "&")) for src in sources]
    text = text_of(page.text)
    assert f"step {steps[0]['step']}: {steps[0]['query']}" in text and "not available" not in text
    picture = png(thumb.content)
    assert thumb.status_code == 200 and missing.status_code == 404
    assert len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 20  # the scene, not grey
    assert "the scarlet tile" in text and sources and all(i.status_code == 200 for i in images)
    stored = {p.read_bytes() for p in (segment_out / "vlm_images").iterdir()}
    assert all(i.content in stored for i in images)
