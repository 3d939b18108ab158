"""``--vlm-tool-calls``: the agent works against servers that return native calls, that ignore
``tools`` and write calls as text (Hermes tags, fenced JSON), and that refuse ``tools``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_conventions import run_family

from agent.vlm_profile import PROFILES

QWEN3 = PROFILES["qwen3-vl"]


def events(trace: Path, name: str) -> list[dict]:
    return [e for e in map(json.loads, trace.read_text().splitlines()) if e["event"] == name]


@pytest.mark.slow
@pytest.mark.parametrize("style", ["hermes", "json"])
def test_text_mode_describes_the_tools_and_parses_the_calls(tmp_path: Path, style: str) -> None:
    trace = tmp_path / "trace.jsonl"
    run = run_family("agent", "qwen3-vl", replace(QWEN3, tool_calls="text"), tool_style=style, trace=trace)
    assert min(run.ious) >= 0.9 and {r.stop_reason for r in run.results} == {"agent_submit"}
    assert all("tools" not in (r.json or {}) for r in run.requests)  # nothing the server could ignore
    system = run.requests[0].json["messages"][0]["content"]  # type: ignore[index]
    assert "<tool_call>" in system and "region_prompt" in system and '"box"' in system
    turns = events(trace, "turn")
    assert turns and {t["tool_call_style"] for t in turns} == {"text"}
    # the results went back as <tool_response> blocks in a user message
    last = run.requests[-1].json["messages"]  # type: ignore[index]
    assert any(m["role"] == "user" and "<tool_response>" in str(m["content"]) for m in last)
    assert not any(m["role"] == "tool" for m in last)


@pytest.mark.slow
def test_auto_uses_native_calls_when_the_server_returns_them(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    run = run_family("agent", "qwen3-vl", replace(QWEN3, tool_calls="auto"), tool_style="native", trace=trace)
    assert min(run.ious) >= 0.9
    assert all("tools" in (r.json or {}) for r in run.requests)
    assert {t["tool_call_style"] for t in events(trace, "turn")} == {"native"}
    assert all(e["tool_call_styles"] == {"native": 3} for e in events(trace, "agent_stop"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("style", "status", "says"), [("strict", 400, "enable-auto-tool-choice"), ("llamacpp", 500, "--jinja")]
)
def test_auto_drops_tools_a_server_refuses_and_goes_on_in_text(
    tmp_path: Path, style: str, status: int, says: str
) -> None:
    """vLLM without --enable-auto-tool-choice answers 400 to `tools`, an older llama.cpp without
    --jinja 500: asked again without them, once; every later request leaves them out, and the
    trace says so."""
    trace = tmp_path / "trace.jsonl"
    run = run_family("agent", "qwen3-vl", replace(QWEN3, tool_calls="auto"), tool_style=style, trace=trace)
    assert min(run.ious) >= 0.9 and {r.stop_reason for r in run.results} == {"agent_submit"}
    with_tools = [r for r in run.requests if "tools" in (r.json or {})]
    assert len(with_tools) == 1  # the refused one; then never again
    calls = events(trace, "vlm_call")
    assert calls[0]["status"] == status and says in calls[0]["error"]
    assert all(c.get("dropped") == ["tools"] for c in calls[1:])
    assert {t["tool_call_style"] for t in events(trace, "turn")} == {"text"}


@pytest.mark.slow
def test_native_mode_against_a_server_without_tool_calls_falls_back_and_says_why() -> None:
    refused = run_family("agent", "qwen3-vl", QWEN3, tool_style="strict")
    assert {r.stop_reason for r in refused.results} == {"fallback"}
    reason = refused.results[0].fallback_reason or ""
    assert "HTTP 400" in reason and "--vlm-tool-calls text" in reason
    ignored = run_family("agent", "qwen3-vl", QWEN3, tool_style="hermes")  # calls in content, unread
    assert {r.fallback_kind for r in ignored.results} == {"no_tool_call"}
    assert (
        max(ignored.ious)
        < 0.9
        <= min(run_family("agent", "qwen3-vl", replace(QWEN3, tool_calls="text"), tool_style="hermes").ious)
    )
