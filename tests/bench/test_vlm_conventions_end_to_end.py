"""Each model family, end to end: the probe's suggested flags make ``ground`` and ``agent``
segment the object (IoU >= 0.9); the wrong convention measurably does not."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from PIL import Image as PILImage

from agent.vlm_profile import ProfileChoice
from bench.benchmarks.ground import expression_of, targets_of
from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer
from bench.doubles.vlm_conventions import CONVENTIONS, ConventionVLM
from bench.probe.options import ProbeOptions
from bench.probe.run import probe_endpoint
from tools.offline.missed_scenes import halo_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from helpers_conventions import run_family

# A convention each family is easily mistaken for (a Qwen2.5 answer read as 0-1000, Gemini's read x first...).
WRONG = {
    "qwen2.5-vl": "norm1000",
    "qwen3-vl": "pixels",
    "gemini": "norm1000",
    "internvl": "norm1000-yx",
    "pixels": "norm1000",
    "norm1": "percent",
    "percent": "norm1",
}
STYLE = {"gemini": "hermes", "internvl": "json"}  # servers that ignore `tools`: text tool calls


def suggested_choice(family: str) -> ProfileChoice:
    """What `refseg vlm probe` suggests for the family's server, as the options it builds."""
    with ScriptedServer(policy=ConventionVLM(family, STYLE.get(family, "native"))) as srv:
        report = anyio.run(probe_endpoint, ProbeOptions(srv.base_url, model="m"))
    flags = dict(zip(report.suggested()[::2], report.suggested()[1::2], strict=False))
    return ProfileChoice(
        flags.get("--vlm-profile"),
        coords=flags["--vlm-coords"],
        tool_calls=flags["--vlm-tool-calls"],  # type: ignore[arg-type]
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CONVENTIONS))
def test_the_suggested_flags_segment_and_a_wrong_convention_does_not(family: str) -> None:
    choice = suggested_choice(family)
    style = STYLE.get(family, "native")
    wrong = ProfileChoice(coords=WRONG[family], tool_calls=choice.tool_calls).resolve()  # type: ignore[arg-type]
    for controller in ("ground", "agent"):
        right = run_family(controller, family, choice.resolve(), tool_style=style)
        assert min(right.ious) >= 0.9, (controller, right.ious)
        bad = run_family(controller, family, wrong, tool_style=style)
        assert np.mean(bad.ious) <= np.mean(right.ious) - 0.3, (controller, bad.ious)


@pytest.mark.slow
def test_segment_with_the_probes_flags_against_a_gemini_style_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Done when: box_2d (y first, 0-1000) in content, `tools` ignored: the probe suggests
    norm1000-yx and text tool calls, and `segment --controller ground` with them segments the
    object; the trace shows the box in the VLM's convention and in the image."""
    ms = halo_scene(1, size=(300, 1001))
    path = tmp_path / "scene.png"
    PILImage.fromarray(ms.scene.image).save(path)
    policy = ConventionVLM("gemini", "hermes", targets=targets_of([ms]))
    ious = {}
    with ScriptedServer(policy=policy, models=["gemini-2.5-flash"]) as srv:
        assert main(["vlm", "probe", "--vlm-base-url", srv.base_url]) == 0
        suggested = capsys.readouterr().out.splitlines()[-1].removeprefix("suggested: ").split()
        assert "--vlm-coords norm1000-yx" in " ".join(suggested) and "--vlm-tool-calls text" in " ".join(
            suggested
        )
        for name, flags in (("right", suggested), ("wrong", [*suggested, "--vlm-coords", "norm1000"])):
            out = tmp_path / name
            args = ["segment", str(path), expression_of(ms), "--toolset", "offline", "--controller", "ground"]
            assert main([*args, "--vlm-base-url", srv.base_url, *flags, "--out", str(out), "--no-cache"]) == 0
            mask = np.asarray(PILImage.open(out / "mask.png")) > 0
            ious[name] = float((mask & ms.target.mask).sum() / (mask | ms.target.mask).sum())
    # Read x first, the box lands elsewhere: the drawing does not fit it and the ranker's choice
    # (the target merged with its halo) stands.
    assert ious["right"] >= 0.9 and ious["wrong"] <= ious["right"] - 0.1, ious
    wrong = json.loads((tmp_path / "wrong" / "result.json").read_text())
    assert wrong["stop_reason"] != "grounded" and "does not match the VLM's box" in " ".join(wrong["notes"])
    result = json.loads((tmp_path / "right" / "result.json").read_text())
    assert result["stop_reason"] == "grounded"
    assert result["config"]["vlm"]["profile"]["coords"] == "norm1000-yx"
    assert result["config"]["vlm"]["profile"]["tool_calls"] == "text"
    capsys.readouterr()
    assert main(["trace", str(tmp_path / "right")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "prompt region_prompt: box" in ln)
    assert "(VLM view 768x230 norm1000-yx)" in line and "(image 1001x300)" in line
    given = [float(v) for v in re.search(r"box \[([^\]]+)\]", line).group(1).split(",")]  # type: ignore[union-attr]
    in_image = [float(v) for v in re.search(r"= \[([^\]]+)\] \(image", line).group(1).split(",")]  # type: ignore[union-attr]
    x0, y0, x1, y1 = ms.box_xyxy
    np.testing.assert_allclose(
        given, [y0 / 300 * 1000, x0 / 1001 * 1000, y1 / 300 * 1000, x1 / 1001 * 1000], atol=3
    )
    np.testing.assert_allclose(in_image, ms.box_xyxy, atol=1.5)
