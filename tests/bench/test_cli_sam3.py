"""``refseg segment --toolset sam3`` end to end (tiny SAM 3, random weights, a real photo), the
weights' identity in result.json, and the SAM 3 flags' one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_ASSETS
from PIL import Image as PILImage

from bench.cli import main
from tools.errors import ConfigError

TINY = ["--toolset", "sam3", "--weights", "random", "--sam3-size", "tiny"]
# The team's photos: beside the checkout (conftest.REAL_ASSETS), else the shared folder.
PHOTOS = [REAL_ASSETS, Path("/work/shared/assets/real")]


@pytest.fixture
def truck() -> Path:
    found = next((folder / "truck.jpg" for folder in PHOTOS if (folder / "truck.jpg").exists()), None)
    if found is None:
        pytest.skip("the shared photos (truck.jpg) are not present")
    return found


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_segment_the_truck_with_sam3(truck: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["segment", str(truck), "the truck", *TINY, "--out", str(out), "--max-side", "640"]) == 0
    assert {p.name for p in out.iterdir()} >= {"mask.png", "overlay.png", "result.json", "trace.jsonl"}
    size = PILImage.open(truck).size
    assert PILImage.open(out / "mask.png").size == size and PILImage.open(out / "overlay.png").size == size
    result = json.loads((out / "result.json").read_text())
    assert result["chosen"] >= 0 and np.asarray(PILImage.open(out / "mask.png")).any()
    assert any("random weights" in note for note in result["notes"])
    assert result["config"]["settings"]["options"]["sam3_propose"]["threshold"] == 0.0  # random weights
    weights = result["config"]["weights"]
    assert (
        weights["sam3_propose"].startswith("random:sam3-tiny-")
        and weights["sam3_prompt"] == weights["sam3_propose"]
    )
    calls = [e for e in events(out) if e["event"] == "tool_call"]
    assert {"sam3_propose", "sam3_rank"} <= {e["tool"] for e in calls}
    encoded = [e["result"]["image"] for e in calls if e["tool"] == "sam3_propose"]
    # the loop's rewrites and the other expressions re-query: the encoding is reused, or the
    # same query is a cache hit, which encoded nothing
    assert encoded[0] == "encoded" and set(encoded[1:]) <= {"reused", "cached"}


@pytest.mark.slow
def test_a_local_checkpoint_is_used_and_its_sha256_recorded(tmp_path: Path) -> None:
    from tools.sam3.config import build_config
    from tools.sam3.loading import build_random

    folder = tmp_path / "weights"
    build_random(build_config("tiny"), 7).save_pretrained(folder)
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    image = tmp_path / "scene.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    args = ["segment", str(image), "a box", "--toolset", "sam3", "--controller", "oneshot", "--out", str(out)]
    assert main([*args, "--sam3-checkpoint", str(folder / "model.safetensors")]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["weights"]["sam3_propose"].endswith(f":sha256:{sha}")
    assert result["config"]["settings"]["options"]["sam3_propose"]["checkpoint"] == str(
        folder / "model.safetensors"
    )


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--toolset", "models", "--sam3-size", "tiny"], "apply to the SAM 3 tools only"),
        (
            ["--toolset", "sam3", "--sam3-checkpoint", "/nowhere/model.safetensors"],
            "refseg weights download sam3",
        ),
        (["--toolset", "sam3", "--tool-option", "sam3_propose.size=huge"], "sam3_propose: option size"),
    ],
)
def test_sam3_flags_fail_in_one_line(
    extra: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "scene.png"
    PILImage.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(image)
    code = main(["segment", str(image), "a box", *extra, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and says in err and len(err.splitlines()) == 1, err
    assert ConfigError.exit_code > 0
