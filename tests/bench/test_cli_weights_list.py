"""``refseg weights list`` shows the CLIP weights beside the SAM checkpoints, present or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


def test_weights_list_shows_sam_and_clip_and_where_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "sam").mkdir()
    (tmp_path / "sam" / "sam_vit_b_01ec64.pth").write_bytes(b"stand-in")
    assert main(["weights", "list", "--dest", str(tmp_path / "sam")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(ln.startswith("sam_vit_b ") and " present " in ln for ln in out)
    assert any(ln.startswith("sam_vit_h ") and " missing " in ln for ln in out)
    clip = next(ln for ln in out if ln.startswith("clip ViT-B-16/openai "))
    assert " missing " in clip and "hf-hub:timm/vit_base_patch16_clip_224.openai" in clip
    assert "`refseg weights download clip --model ViT-B-16 --pretrained openai`" in "\n".join(out)
    repo = tmp_path / "hub" / "models--timm--vit_base_patch16_clip_224.openai"
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    weights = repo / "snapshots" / ("a" * 40) / "open_clip_model.safetensors"
    weights.write_bytes(b"stand-in")
    assert main(["weights", "list", "--dest", str(tmp_path / "sam")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert " present " in next(ln for ln in out if ln.startswith("clip ViT-B-16/openai "))
    assert f"(CLIP weights in open_clip's cache: {weights})" in out
