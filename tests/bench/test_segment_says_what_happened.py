"""What ``refseg segment`` tells its user is true: the exit code and reason of a VLM fallback,
one numbering of candidates, sizes as W x H, the random-weights mark, what config it records,
and a progress line on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from PIL import Image as PILImage

from agent.episode import EpisodeConfig
from agent.session import Session
from bench.cli import main
from bench.options import EpisodeOptions, ModelOptions
from bench.runtime import build_runtime
from bench.segment import RANDOM_WEIGHTS_MARK, candidate_labels
from tools.images import load_image
from tools.offline.scenes import generate_scene
from tools.render import WARNING_FILL

OFFLINE = ["--toolset", "offline", "--no-cache"]


def scene_file(tmp_path: Path, size: tuple[int, int] = (240, 320), seed: int = 3) -> tuple[Path, str]:
    scene = generate_scene(seed, size)
    path = tmp_path / "scene.png"
    PILImage.fromarray(scene.image).save(path)
    return path, scene.objects[0].expressions[0]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens once the socket is closed


def test_a_vlm_fallback_exits_5_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, expression = scene_file(tmp_path)
    out = tmp_path / "out"
    args = ["segment", str(path), expression, *OFFLINE, "--controller", "ground", "--out", str(out)]
    code = main([*args, "--tau-conf", "1", "--vlm-base-url", closed_port_url(), "--vlm-max-retries", "0"])
    captured = capsys.readouterr()
    assert code == 5
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "fallback" and (out / "mask.png").exists()  # the answer is kept
    assert "stop=fallback" in captured.out
    err = [ln for ln in captured.err.splitlines() if ln.startswith("refseg: error:")]
    assert len(err) == 1 and result["fallback_reason"] in err[0] and "connection" in err[0]
    assert "its mask is the best candidate so far" in err[0]


def test_candidates_carry_their_proposal_index_in_console_overlay_result_and_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, expression = scene_file(tmp_path)
    out = tmp_path / "out"
    assert (
        main(["segment", str(path), expression, *OFFLINE, "--controller", "oneshot", "--out", str(out)]) == 0
    )
    result = json.loads((out / "result.json").read_text())
    chosen, n = result["chosen"], result["n_proposals"]
    assert f"chosen #{chosen} of {n} " in capsys.readouterr().out
    assert result["candidates"][0]["index"] == chosen  # the top candidate is the chosen one
    assert main(["trace", str(out)]) == 0
    assert f"chosen #{chosen} " in capsys.readouterr().out
    # The overlay's labels, from an episode of the same controller on the same image.
    rt = build_runtime(
        EpisodeOptions(models=ModelOptions(toolset="offline"), episode=EpisodeConfig("oneshot"))
    )
    try:
        episode = anyio.run(Session(rt.registry, rt.config, None).run, load_image(path), expression)
    finally:
        rt.close()
    labels = candidate_labels(episode)
    assert episode.chosen == chosen and labels[0].startswith(f"#{chosen} p=")
    assert [int(label.split()[0][1:]) for label in labels] == [c["index"] for c in result["candidates"]]


def test_sizes_read_width_by_height_in_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, expression = scene_file(tmp_path, size=(200, 500))  # H 200, W 500
    out = tmp_path / "out"
    assert main(["segment", str(path), expression, *OFFLINE, "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["image_size"] == [200, 500]  # records: [H, W]
    capsys.readouterr()
    assert main(["trace", str(out)]) == 0
    assert " image=500x200" in capsys.readouterr().out


@pytest.mark.slow  # builds the tiny SAM and CLIP (torch)
def test_random_weights_mark_the_overlay_and_the_recorded_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, expression = scene_file(tmp_path, size=(160, 200))
    tiny = ["--weights", "random", "--sam-model", "tiny", "--clip-model", "tiny", "--no-cache"]
    out = tmp_path / "random"
    assert main(["segment", str(path), expression, *tiny, "--controller", "oneshot", "--out", str(out)]) == 0
    overlay = np.asarray(PILImage.open(out / "overlay.png"))
    assert (overlay[-3] == WARNING_FILL).all(axis=-1).mean() > 0.5  # the red band, on every copy
    settings = json.loads((out / "result.json").read_text())["config"]["settings"]
    assert settings["weights"] == "random" and settings["options"]["sam_propose"]["config"] == "tiny"
    err = capsys.readouterr().err
    assert "random weights: masks are meaningless" in err
    assert "note: random weights: SAM quality thresholds and NMS disabled" in err  # a degraded mode
    assert RANDOM_WEIGHTS_MARK.startswith("RANDOM WEIGHTS")
    from starlette.testclient import TestClient

    from bench.viewer import ViewerOptions, create_app

    with TestClient(create_app(ViewerOptions(run=out, preload=False)), base_url="http://127.0.0.1") as client:
        for page in ("/", "/result/0"):
            assert 'id="random-weights"' in client.get(page).text


def test_an_offline_run_records_no_model_weights_and_refuses_random_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, expression = scene_file(tmp_path, size=(160, 200))
    plain = tmp_path / "offline"
    assert main(["segment", str(path), expression, *OFFLINE, "--out", str(plain)]) == 0
    settings = json.loads((plain / "result.json").read_text())["config"]["settings"]
    assert not {"weights", "sam_model_type", "clip_model", "clip_pretrained", "seed"} & set(settings)
    assert settings["max_side"] == 2048 and "refine_query" in settings["options"]
    assert (np.asarray(PILImage.open(plain / "overlay.png"))[-3] != WARNING_FILL).any(axis=-1).all()
    assert main(["segment", str(path), expression, *OFFLINE, "--weights", "random", "--out", str(plain)]) == 2
    assert "no tool of this run has weights" in capsys.readouterr().err
    assert main(["segment", str(path), expression, "--sam-model", "tiny", "--out", str(plain)]) == 2
    assert "--sam-model tiny: test-sized architectures have no weights; add --weights random" in (
        capsys.readouterr().err
    )


def _segment_stderr(tmp_path: Path, on_terminal: bool) -> str:
    path, expression = scene_file(tmp_path)
    command = [sys.executable, "-m", "bench.cli", "segment", str(path), expression, *OFFLINE]
    command += ["--out", str(tmp_path / ("tty" if on_terminal else "pipe"))]
    if not on_terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_shows_on_a_terminal_and_stays_out_of_pipes(tmp_path: Path) -> None:
    shown = _segment_stderr(tmp_path, on_terminal=True)
    assert re.search(
        r"building tools and loading models \(region_propose, attribute_rank\): \d+\.\d s", shown
    )
    assert "scene.png [loop] ... 0 s" in shown
    piped = _segment_stderr(tmp_path, on_terminal=False)
    assert "loading models" not in piped and "\x1b[K" not in piped and "scene.png [loop]" not in piped
