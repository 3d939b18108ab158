"""``refseg vlm probe`` names every scripted model family's convention and tool-call style, in a
bounded number of requests, and exits non-zero when the endpoint cannot take images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer, Status, Text
from bench.doubles.vlm_conventions import CONVENTIONS, EXPECTED, ConventionVLM, received_sizes
from bench.probe.checks import MAX_REQUESTS
from bench.probe.options import NO_IMAGES, ProbeOptions
from bench.probe.report import ProbeReport
from bench.probe.run import probe_endpoint


def probe(policy: Any, **server: Any) -> tuple[ProbeReport, ScriptedServer]:
    with ScriptedServer(policy=policy, **server) as srv:
        report = anyio.run(probe_endpoint, ProbeOptions(srv.base_url, model="m"))
    return report, srv


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CONVENTIONS))
def test_the_probe_identifies_each_coordinate_convention(family: str) -> None:
    report, srv = probe(ConventionVLM(family))
    coords, profile = EXPECTED[family]
    assert report.fit is not None and report.fit.coords == coords and report.fit.iou >= 0.9
    runner_up = sorted(report.fit.scores.values())[-2]
    assert runner_up <= 0.8, report.fit.scores  # the answers tell the conventions apart
    suggested = " ".join(report.suggested())
    assert f"--vlm-coords {coords}" in suggested and ("--vlm-profile qwen2.5-vl" in suggested) == bool(
        profile
    )
    assert report.image_input and report.tool_calls == "native" and not report.warnings
    assert report.requests == len(srv.requests) <= MAX_REQUESTS
    sizes = received_sizes(srv.requests)
    assert sizes and all(w % 28 and h % 28 for w, h in sizes)  # off the grid, on purpose


@pytest.mark.slow
@pytest.mark.parametrize(
    ("style", "native", "text"),
    [("native", True, True), ("hermes", False, True), ("json", False, True), ("strict", False, True)],
)
def test_the_probe_tells_native_from_text_tool_calls(style: str, native: bool, text: bool) -> None:
    report, _ = probe(ConventionVLM("gemini", style))
    facts = report.as_dict()
    assert (facts["native_tool_calls"], facts["text_tool_calls"]) == (native, text)
    assert facts["tool_calls"] == ("native" if native else "text")
    if style == "strict":
        assert report.checks["native_tools"].status == 400
        assert any("enable-auto-tool-choice" in w for w in report.warnings)


@pytest.mark.slow
def test_reasoning_and_json_schemas_are_reported() -> None:
    thinking, _ = probe(ConventionVLM("qwen3-vl", reasoning="field", json_schema="accept"))
    assert thinking.reasoning()["present"] and thinking.reasoning()["tokens"] > 0
    assert thinking.json_schema and "--vlm-json-schema" in thinking.suggested()
    assert thinking.fit is not None and thinking.fit.coords == "norm1000"  # not confused by the thinking
    refusing, _ = probe(ConventionVLM("qwen3-vl", reasoning="think", json_schema="refuse"))
    assert refusing.reasoning()["present"] and refusing.reasoning()["tokens"] == 0
    assert refusing.checks["json_schema"].facts["refused"] and "--vlm-json-schema" not in refusing.suggested()
    plain, _ = probe(ConventionVLM("qwen3-vl"))  # ignores response_format: not suggested either
    assert not plain.reasoning()["present"] and not plain.json_schema


def test_gemini_behind_a_server_that_ignores_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case, through the CLI: box_2d (y first, 0-1000) in content, tools ignored."""
    out = tmp_path / "probe.json"
    with ScriptedServer(policy=ConventionVLM("gemini", "hermes"), models=["gemini-2.5-flash"]) as srv:
        code = main(["vlm", "probe", "--vlm-base-url", srv.base_url, "--json", str(out)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert printed[-1] == (
        "suggested: --vlm-model gemini-2.5-flash --vlm-coords norm1000-yx --vlm-tool-calls text"
    )
    facts = json.loads(out.read_text())
    assert facts["coords"] == "norm1000-yx" and facts["tool_calls"] == "text" and facts["image_input"]
    assert facts["models"] == ["gemini-2.5-flash"] and facts["model"] == "gemini-2.5-flash"
    assert facts["latency_s"]["image"] > 0 and facts["tokens_per_image"] > 0
    assert set(facts) >= {"coords", "tool_calls", "image_input", "latency_s", "suggested", "reasoning"}


def _no_images(request: dict[str, Any]) -> Any:
    has_image = any(isinstance(m.get("content"), list) for m in request.get("messages", []))
    return Status(400, "this model does not take image input") if has_image else Text("ready")


@pytest.mark.parametrize(
    ("policy", "why"),
    [(_no_images, "did not take an image"), (lambda _r: Text("ready"), "no sign the model saw them")],
)
def test_an_endpoint_that_cannot_take_images_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Any, why: str
) -> None:
    out = tmp_path / "probe.json"
    with ScriptedServer(policy=policy) as srv:
        code = main(["vlm", "probe", "--vlm-base-url", srv.base_url, "--vlm-model", "m", "--json", str(out)])
    assert code == NO_IMAGES
    printed = capsys.readouterr().out
    assert why in printed and json.loads(out.read_text())["image_input"] is False
    lines = {line[:12].strip(): line[12:].strip() for line in printed.splitlines() if line[:1] != " "}
    assert lines["image input"].startswith("NO: ") and "ok " not in lines["image input"].split(" (")[0]
    assert lines["coordinates"].startswith(("not checked: ", "not determined: "))  # never "None"
    assert "None" not in lines["coordinates"] and not lines["coordinates"].endswith("fit:")


def test_an_unreachable_endpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["vlm", "probe", "--vlm-base-url", "http://127.0.0.1:9/v1", "--vlm-model", "m"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and len(err) == 1 and "cannot reach the VLM" in err[0]
