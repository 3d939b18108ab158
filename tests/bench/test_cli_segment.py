"""``refseg segment`` end to end with the offline toolset, and its bad-input behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from bench.cli import main
from tools.offline.scenes import generate_scene

OFFLINE = ["--toolset", "offline", "--controller", "loop"]


@pytest.fixture
def scene_png(tmp_path: Path) -> tuple[Path, str, np.ndarray]:
    scene = generate_scene(3)
    path = tmp_path / "scene.png"
    PILImage.fromarray(scene.image).save(path)
    obj = scene.objects[0]
    return path, obj.expressions[0], obj.mask


def test_segment_writes_the_four_files(scene_png: tuple[Path, str, np.ndarray], tmp_path: Path) -> None:
    path, expression, gt = scene_png
    out = tmp_path / "out"
    assert main(["segment", str(path), expression, *OFFLINE, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"mask.png", "overlay.png", "result.json", "trace.jsonl"}
    mask = np.asarray(PILImage.open(out / "mask.png")) > 0
    assert mask.shape == gt.shape
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] in {"guard", "max_iter"} and result["queries"][0] == expression
    assert result["costs"]["region_propose"]["calls"] == 1 and result["chosen"] >= 0
    assert PILImage.open(out / "overlay.png").size == PILImage.open(path).size
    events = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert any(e["event"] == "tool_call" and e["tool"] == "attribute_rank" for e in events)


def test_second_run_is_served_from_the_cache(scene_png: tuple[Path, str, np.ndarray], tmp_path: Path) -> None:
    path, expression, _ = scene_png
    args = ["segment", str(path), expression, *OFFLINE, "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    first = json.loads((tmp_path / "a" / "result.json").read_text())["costs"]
    second = json.loads((tmp_path / "b" / "result.json").read_text())["costs"]
    assert first["region_propose"]["cache_hits"] == 0 and second["region_propose"]["cache_hits"] == 1


def test_folder_gives_side_by_side_one_shot_and_loop(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path
) -> None:
    path, expression, _ = scene_png
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    assert main(["segment", str(folder), expression, *OFFLINE, "--out", str(out)]) == 0
    for stem in ("a", "b"):
        assert (out / stem / "oneshot" / "mask.png").exists() and (
            out / stem / "loop" / "result.json"
        ).exists()
        assert (out / stem / "side_by_side.png").exists()


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_unusual_image_modes_work(mode: str, tmp_path: Path) -> None:
    scene = generate_scene(5)
    img = PILImage.fromarray(scene.image)
    if mode == "I;16":
        img = PILImage.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    else:
        img = img.convert(mode)
    path = tmp_path / "img.png"
    img.save(path)
    assert main(["segment", str(path), "the red circle", *OFFLINE, "--out", str(tmp_path / "o")]) == 0
    assert np.asarray(PILImage.open(tmp_path / "o" / "mask.png")).shape == scene.image.shape[:2]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_corrupt_image_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    assert main(["segment", str(bad), "the dog", *OFFLINE, "--out", str(tmp_path / "o")]) == 2
    assert "cannot decode" in one_line_error(capsys)


def test_empty_expression_is_refused(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = scene_png
    assert main(["segment", str(path), "   ", *OFFLINE, "--out", str(tmp_path / "o")]) == 2
    assert "expression is empty" in one_line_error(capsys)


def test_missing_expression_and_missing_file(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = scene_png
    with pytest.raises(SystemExit) as exc:  # argparse: usage, then the missing argument
        main(["segment", str(path), *OFFLINE])
    assert exc.value.code == 2 and "required: EXPRESSION" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "nope.png"), "dog", *OFFLINE]) == 2
    assert "no such file" in one_line_error(capsys)


def test_unknown_tool_and_controller(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = scene_png
    assert main(["segment", str(path), "dog", "--proposer", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown tool 'nope'" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(path), "dog", "--controller", "magic"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_sam_checkpoint_names_path_and_command(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = scene_png
    code = main(
        [
            "segment",
            str(path),
            "dog",
            "--controller",
            "oneshot",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = one_line_error(capsys)
    assert code == 3 and "sam_vit_b_01ec64.pth" in err and "refseg weights download" in err


def test_agent_without_vlm_explains_in_one_line(
    scene_png: tuple[Path, str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = scene_png
    code = main(
        [
            "segment",
            str(path),
            "dog",
            "--toolset",
            "offline",
            "--controller",
            "agent",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = one_line_error(capsys)
    assert (
        code == 2 and "SILICONFLOW_API_KEY" in err and "--vlm-base-url" in err and len(err.splitlines()) == 1
    )
