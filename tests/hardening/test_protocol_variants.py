"""Tool-call arguments as JSON objects, a 200 HTML page, killed invocations."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from helpers_chaos import chaos_row

from agent.vlm import VLMCallError, VLMClient, VLMConfig, VLMReply
from bench.chaos.protocol import HTML, NOT_JSON, with_object_arguments
from bench.doubles.scripted_server import Raw, ScriptedServer, ToolCalls
from bench.run_folder import read_invocations


@pytest.mark.slow
def test_object_arguments_html_replies_and_killed_invocations() -> None:
    row = chaos_row("protocol variants")
    assert row.survived, row.problems
    assert row.injected == row.detected and row.details["served"]["html"] > 0


def _ask(srv: ScriptedServer) -> VLMReply:
    """One completion from a fresh client, closed afterwards."""

    async def ask() -> VLMReply:
        config = VLMConfig(base_url=srv.base_url, api_key="sk-test-key-0000", max_retries=2, timeout_s=5)
        async with VLMClient(config) as client:
            return await client.complete([{"role": "user", "content": "go"}])

    return anyio.run(ask)


def test_arguments_sent_as_an_object_are_accepted() -> None:
    with ScriptedServer() as srv:
        srv.push(with_object_arguments({}, 1))  # propose, arguments {} as an object
        srv.push(Raw(200, _submit_body()))
        assert _ask(srv).tool_calls[0].parse_arguments() == {}
        reply = _ask(srv)
    assert reply.tool_calls[0].parse_arguments() == {"index": 2, "reason": "left"}


def _submit_body() -> dict[str, object]:
    from bench.doubles.scripted_server import completion_json

    body = completion_json(ToolCalls.of(("submit", {"index": 2, "reason": "left"})))
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"index": 2, "reason": "left"}
    return body


def test_an_html_page_is_named_and_not_retried() -> None:
    with ScriptedServer([Raw(200, HTML, {"Content-Type": "text/html"})] * 3) as srv:
        with pytest.raises(VLMCallError) as info:
            _ask(srv)
        assert len(srv.requests) == 1
    assert NOT_JSON in str(info.value) and "no choices" not in str(info.value)


def test_invocations_without_an_end_line_are_killed_ones_and_old_files_still_read(tmp_path: Path) -> None:
    lines = [
        {"run_id": "old", "wall_s": 1.0, "examples_run": 3},  # a file written before start lines
        {"event": "start", "run_id": "a", "started": 1.0},
        {"event": "end", "run_id": "a", "started": 1.0, "wall_s": 2.0, "examples_run": 4},
        {"event": "start", "run_id": "b", "started": 5.0},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    (tmp_path / "invocations.jsonl").write_bytes(text.encode() + b"\x80 not UTF-8\n")
    got = read_invocations(tmp_path)
    assert [(i["run_id"], i["ended"]) for i in got] == [("old", True), ("a", True), ("b", False)]
    assert got[1]["examples_run"] == 4
