"""SAM 3 weights: a safetensors file in the official layout (written here by transformers'
own ``save_pretrained`` from random weights), its sha256 in the fingerprint, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import numpy as np
import pytest
from helpers_sam3 import scene, tiny_settings
from safetensors.torch import load_file, save_file

from tools.base import Workspace
from tools.errors import CheckpointError
from tools.sam3.config import build_config
from tools.sam3.engine import Sam3Engine
from tools.sam3.loading import build_random
from tools.sam3.propose import Sam3Propose, Sam3ProposeParams

SEED = 3


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SAM 3 with random weights, saved as the hub ships it: config.json + model.safetensors."""
    folder = tmp_path_factory.mktemp("sam3-tiny")
    build_random(build_config("tiny"), SEED).save_pretrained(folder)
    return folder


def pretrained(path: Path, **options: object) -> Sam3Propose:
    settings = tiny_settings(
        weights="pretrained", options={"sam3_propose": {"checkpoint": str(path), **options}}
    )
    return Sam3Propose(settings)


def detect(tool: Sam3Propose) -> np.ndarray:
    ws = Workspace(scene(), "red box")
    return anyio.run(tool, ws, Sam3ProposeParams(threshold=0.0)).scores


@pytest.mark.slow
def test_the_file_loads_key_for_key_and_answers_like_the_model_it_was_saved_from(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    keys = load_file(str(saved / "model.safetensors")).keys()
    assert any(k.startswith("detector_model.vision_encoder.backbone.") for k in keys)
    assert any(k.startswith("tracker_model.") and ".mask_decoder." in k for k in keys)
    assert any(k.startswith("tracker_neck.") for k in keys)
    # The file's config.json says tiny: the default size (full) does not apply.
    tool = pretrained(saved / "model.safetensors", size="full")
    reference = Sam3Propose(
        tiny_settings(), engine=Sam3Engine(build_random(build_config("tiny"), SEED).eval())
    )
    other_seed = Sam3Propose(tiny_settings(seed=SEED + 1))
    assert np.array_equal(detect(tool), detect(reference))
    assert not np.array_equal(detect(tool), detect(other_seed))


def test_the_fingerprint_is_the_files_sha256_and_the_precision(saved: Path) -> None:
    path = saved / "model.safetensors"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pretrained(path).fingerprint().endswith(f":sha256:{sha}")
    bf16 = Sam3Propose(
        tiny_settings(
            weights="pretrained", precision="bf16", options={"sam3_propose": {"checkpoint": str(path)}}
        )
    )
    assert bf16.fingerprint() == pretrained(path).fingerprint() + ":bf16"
    random = Sam3Propose(tiny_settings()).fingerprint()
    assert random.startswith("random:sam3-tiny-") and random.endswith(":seed0")


@pytest.mark.slow
def test_a_file_without_config_needs_the_size_it_was_made_with(saved: Path, tmp_path: Path) -> None:
    alone = tmp_path / "weights.safetensors"
    alone.write_bytes((saved / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="--sam3-size"):
        pretrained(alone, size="full").setup()
    assert np.array_equal(
        detect(pretrained(alone, size="tiny")), detect(pretrained(saved / "model.safetensors"))
    )


def test_the_original_sam3_pt_layout_is_refused_in_one_line(saved: Path, tmp_path: Path) -> None:
    state = load_file(str(saved / "model.safetensors"))
    renamed = {
        k.replace("detector_model.", "detector.")
        .replace("tracker_model.", "tracker.")
        .replace("tracker_neck.", "tracker.neck."): v
        for k, v in state.items()
    }
    path = tmp_path / "sam3.safetensors"
    save_file(renamed, str(path))
    with pytest.raises(CheckpointError, match=r"original sam3\.pt") as err:
        pretrained(path, size="tiny").setup()
    assert "\n" not in str(err.value)


def test_a_partial_or_foreign_file_is_refused(saved: Path, tmp_path: Path) -> None:
    state = load_file(str(saved / "model.safetensors"))
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("tracker_neck.")}, str(partial))
    with pytest.raises(CheckpointError, match="missing tensors") as err:
        pretrained(partial, size="tiny").setup()
    assert "tracker_neck." in str(err.value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        pretrained(garbage, size="tiny").setup()


def test_missing_weights_say_how_to_get_them(tmp_path: Path) -> None:
    tool = Sam3Propose(tiny_settings(weights="pretrained", checkpoint_dir=tmp_path))
    with pytest.raises(CheckpointError) as err:
        tool.setup()
    message = str(err.value)
    assert str(tmp_path / "sam3" / "model.safetensors") in message
    assert (
        "refseg weights download sam3" in message and "HF_TOKEN" in message and "--weights random" in message
    )


def test_without_the_sam3_extra_the_tools_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from tools.errors import ConfigError
    from tools.registry import ToolRegistry

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[sam3\]'"):
        ToolRegistry(tiny_settings()).get("sam3_rank")
