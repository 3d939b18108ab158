"""``refseg trace``: rendering real traces written by agent episodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from helpers_agent_ctl import PROPOSER, RANKER, make_client, make_session, scene_image

from agent.trace_render import TraceError, render_trace
from bench.doubles.scripted_server import ScriptedServer, Status, ToolCalls
from tools.errors import RefsegError


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two agent episodes: s1 ranks, retries a 500, refines nothing and submits; s2 stops on the guard."""
    path = tmp_path_factory.mktemp("run") / "trace.jsonl"
    _, image = scene_image(0)
    script = [
        ToolCalls.of((PROPOSER, {})),
        Status(500),
        ToolCalls.of((RANKER, {"query": "scarlet tile"})),
        ToolCalls.of(("submit", {"index": 3, "reason": "red and square"})),
        ToolCalls.of((PROPOSER, {})),
        ToolCalls.of((RANKER, {})),
    ]

    async def go() -> None:
        with ScriptedServer(script) as srv:
            client = make_client(srv)
            session = make_session(client, path)
            try:
                first = await session.run(image, "the scarlet tile", "s1")
                second = await session.run(image, "the red star on the left", "s2")
            finally:
                await client.aclose()
                session.tracer.close()
        assert (first.stop_reason, second.stop_reason) == ("agent_submit", "guard")

    anyio.run(go)
    return path


def test_renders_turns_tool_calls_guards_vlm_calls_and_the_final_choice(trace: Path) -> None:
    text = render_trace(trace, sample="s1")
    assert "episode sample=s1" in text and "controller=agent" in text and "'the scarlet tile'" in text
    assert "turn 1  finish=tool_calls  -> region_propose" in text
    assert "tool region_propose(" in text and "n_proposals=" in text
    # a tool call's seconds are its wall time, labelled apart from the summary's compute seconds
    assert re.search(r"tool region_propose\(.*\)  [0-9.]+s wall", text)
    assert "tool attribute_rank(" in text and "conf=" in text
    assert "guard conf" in text and "not passed: go on" in text
    assert "FAILED status=500" in text and "retry in" in text  # the retried attempt
    # what each call was shown, in short (the viewer shows the messages): each message once
    shown = [line.split("  [sent ")[1] for line in text.splitlines() if "vlm_call" in line]
    assert shown == [  # the tool answer is new, the retry resends it, then an answer and an overlay
        "2 messages: 2 new, 1 image(s)]",
        "4 messages: 1 new, 0 image(s)]",
        "4 messages: 0 new, 0 image(s)]",
        "7 messages: 2 new, 1 image(s)]",
    ]
    assert "submit candidate #3" in text and "red and square" in text
    assert "final: chosen #3" in text and "stop=agent_submit" in text and "turns=3" in text
    assert "queries: 'the scarlet tile' -> 'scarlet tile'" in text
    assert "cost per tool" in text and "vlm: 3 call(s)" in text
    vlm = next(line for line in text.splitlines() if "vlm: 3 call(s)" in line)
    assert "s waiting on the VLM limits and retry pauses" in vlm  # the pause before the retry
    assert "identical call" not in vlm
    assert "sample=s2" not in text
    # the tree nests tool calls under their turn
    lines = text.splitlines()
    turn = next(i for i, line in enumerate(lines) if line.startswith("├─ turn 1"))
    assert "tool region_propose(" in lines[turn + 2] and lines[turn + 2].startswith("│  └─ ")


def test_guard_stop_and_all_episodes(trace: Path) -> None:
    text = render_trace(trace.parent)  # a run folder works too
    assert text.count("episode sample=") == 2
    s2 = text[text.index("episode sample=s2") :]
    assert "PASSED: stop" in s2 and "stop=guard" in s2 and "agent_stop reason=guard" in s2


def test_torn_line_and_unknown_events_are_tolerated(trace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "trace.jsonl"
    extra = {"event": "zoom", "run_id": "test-run", "sample_id": "s2", "step": 9, "factor": 2}
    copy.write_text(trace.read_text() + json.dumps(extra) + "\n" + '{"event": "tool_call", "sam')
    text = render_trace(copy, sample="s2")
    assert 'zoom {"factor":2}' in text
    assert "1 unreadable line(s) skipped" in text


def test_unfinished_episode_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    lines = [
        {"event": "episode_start", "run_id": "r", "sample_id": "a", "expression": "x", "controller": "loop"},
        {"event": "tool_call", "run_id": "r", "sample_id": "a", "tool": "t", "args": {}, "seconds": 0.1},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert "no episode_end" in render_trace(path)


def test_json_groups_the_selected_events(trace: Path) -> None:
    data = json.loads(render_trace(trace, sample="s1", as_json=True))
    assert [e["sample_id"] for e in data["episodes"]] == ["s1"]
    names = [e["event"] for e in data["episodes"][0]["events"]]
    assert names[0] == "episode_start" and names[-1] == "episode_end"
    assert {"turn", "tool_call", "guard", "vlm_call", "submit", "agent_stop"} <= set(names)


def test_unknown_sample_and_missing_file(trace: Path, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"no episode for sample 'nope'.*known samples: s1, s2"):
        render_trace(trace, sample="nope")
    with pytest.raises(RefsegError, match="not found"):
        render_trace(tmp_path / "missing.jsonl")
    with pytest.raises(TraceError, match=r"has no trace\.jsonl"):
        render_trace(tmp_path)


def test_cli_subcommand(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(["trace", str(trace), "--sample", "s2"]) == 0
    assert "episode sample=s2" in capsys.readouterr().out
    assert main(["trace", str(trace), "--sample", "zzz", "--json"]) == 2
    assert "known samples" in capsys.readouterr().err


def test_each_wait_is_labelled_with_what_it_waited_on(tmp_path: Path) -> None:
    costs = {
        "vlm": {"calls": 4, "seconds": 2.0, "wait_seconds": 3.5, "vlm_wait_seconds": 3.5},
        "refine_query": {"calls": 3, "computed": 2, "joined": 1, "wait_seconds": 1.25, "vlm_wait_seconds": 1},
        "sam_propose": {"calls": 3, "computed": 1, "joined": 2, "seconds": 1.0, "wait_seconds": 0.8},
    }
    events = [
        {"event": "episode_start", "run_id": "r", "sample_id": "a", "expression": "x", "controller": "agent"},
        {"event": "episode_end", "run_id": "r", "sample_id": "a", "chosen": 0, "costs": costs},
    ]
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    text = render_trace(path)
    lines = {line.split(": ")[0].split()[-1]: line for line in text.splitlines() if ": " in line}
    assert "3.5s waiting on the VLM limits and retry pauses" in lines["vlm"]
    assert "identical call" not in lines["vlm"]
    assert "0.25s waiting on an identical call, 1s waiting on the VLM limits" in lines["refine_query"]
    assert "0.8s waiting on an identical call" in lines["sam_propose"] and "VLM" not in lines["sam_propose"]
