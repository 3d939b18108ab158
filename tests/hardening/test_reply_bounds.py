"""Items 2 and 7: every text from outside is size-capped before parsing, parsed in linear
time, and nested no deeper than a bound: VLM answers (ground, refine), tool arguments,
response bodies, ``--tool-option`` values."""

from __future__ import annotations

import gzip
import json
from typing import Any

import anyio
import pytest
from helpers_chaos import chaos_row

from agent.ground_controller import parse_ground_answer
from agent.text_tool_calls import parse_text_tool_calls
from agent.vlm import VLMCallError, VLMClient, VLMConfig
from agent.vlm_reply import ToolCall
from bench.cli import main
from bench.doubles.scripted_server import Raw, ScriptedServer, Text, completion_json
from bench.option_pairs import parse_tool_option
from tools.errors import ConfigError, ToolError
from tools.json_reply import json_values, reply_body
from tools.refine_vlm import parse_refinement

DEEP = 3_000  # 6 KB of brackets: under the 8,000-character argument cap


def nested(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.timeout(60)  # the old \{.*\} search took minutes on this; now microseconds
def test_a_reply_of_600k_braces_is_refused_before_any_search() -> None:
    with pytest.raises(ToolError, match="600,000 characters"):
        parse_ground_answer("{" * 600_000)
    with pytest.raises(ToolError, match="600,000 characters"):
        parse_refinement("[" * 600_000)


@pytest.mark.timeout(60)
def test_spans_are_found_in_linear_time_under_the_cap() -> None:
    assert list(json_values('{"a": 1' + "x}" * 9_000)) == []  # no parse, no backtracking
    with pytest.raises(ToolError, match="nested 19,000 levels deep"):
        list(json_values("{" * 19_000 + "x" + "}" * 900))
    assert reply_body("```" + " " * 19_000) == "```"  # an unclosed fence: the text itself


def test_json_is_still_read_from_fences_prose_and_bare_text() -> None:
    assert parse_ground_answer('```json\n{"box": [1, 2, 30, 40]}\n```') == {"box": [1, 2, 30, 40]}
    assert parse_ground_answer('Sure! {"bbox_2d": [5, 6, 7, 8]} is it.') == {"box": [5, 6, 7, 8]}
    assert parse_ground_answer("the box is [10, 20, 30, 40].") == {"box": [10, 20, 30, 40]}
    assert parse_ground_answer("(10,20),(30,40)") == {"box": [10.0, 20.0, 30.0, 40.0]}
    assert parse_refinement('{"query": "the red car", "rationale": "colour"}') == ("the red car", "colour")


def test_a_deeply_nested_ground_answer_is_a_tool_error_not_a_recursion_error() -> None:
    with pytest.raises(ToolError, match="nested 3,001 levels deep"):
        parse_ground_answer('{"box": ' + nested() + "}")


def test_deeply_nested_tool_arguments_go_back_to_the_model_as_an_error() -> None:
    call = ToolCall("c1", "sam_prompt", '{"box": ' + nested() + "}")
    with pytest.raises(ValueError, match=r"nested 3,00[0-9] levels deep") as info:
        call.parse_arguments()
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_deeply_nested_text_tool_calls_are_skipped_not_a_recursion_error() -> None:
    json_call = parse_text_tool_calls('{"name": "sam_prompt", "arguments": ' + nested() + "}")
    assert json_call.calls == ()  # a JSON span past the nesting bound is not a call
    xml = parse_text_tool_calls(
        f"<tool_call><function=sam_prompt><parameter=box>{nested()}</parameter></function>"
    )
    assert [c.name for c in xml.calls] == ["sam_prompt"]
    assert json.loads(xml.calls[0].arguments) == {"box": nested()}  # kept as the text it was


def test_a_deeply_nested_tool_option_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="nested"):
        parse_tool_option("sam_propose.config=" + nested())
    with pytest.raises(ConfigError, match="10,000"):
        parse_tool_option("clip_rank.style=" + json.dumps({"margin": "x" * 20_000}))
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    code = main([*argv, "--tool-option", "region_propose.x=" + nested(), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("refseg: error: --tool-option region_propose.x: nested")
    assert "\n" not in err


def _ask(server: ScriptedServer) -> str:
    client = VLMClient(VLMConfig(base_url=server.base_url, api_key="sk-local", max_retries=0, timeout_s=5))

    async def ask() -> str:
        async with client:
            return (await client.complete([{"role": "user", "content": "hi"}])).content

    return anyio.run(ask)


def test_a_response_body_nested_too_deeply_is_a_malformed_reply() -> None:
    body = completion_json(Text("hi"))
    text = json.dumps(body)[:-1] + ', "extra": ' + nested(5_000) + "}"
    raw = Raw(200, text, {"content-type": "application/json"})
    with ScriptedServer([raw]) as srv, pytest.raises(VLMCallError, match="response body: nested") as info:
        _ask(srv)
    assert info.value.kind == "malformed"


def test_an_oversized_or_compressed_body_is_refused_unread() -> None:
    big = json.dumps({**completion_json(Text("hi")), "pad": "x" * (17 * 2**20)})
    zipped = gzip.compress(json.dumps(completion_json(Text("hi"))).encode())
    with ScriptedServer(
        [
            Raw(200, big, {"content-type": "application/json"}),
            Raw(200, zipped, {"content-type": "application/json", "content-encoding": "gzip"}),
            Text("fine"),
        ]
    ) as srv:
        with pytest.raises(VLMCallError, match="over 16,777,216") as too_big:
            _ask(srv)
        with pytest.raises(VLMCallError, match="gzip-compressed") as zipped_info:
            _ask(srv)
        assert _ask(srv) == "fine"
    assert too_big.value.kind == zipped_info.value.kind == "oversized" and not too_big.value.retryable
    assert srv.requests[0].headers.get("accept-encoding") == "identity"


@pytest.mark.slow
def test_huge_and_deep_replies_row_costs_no_more_than_the_episode_timeout() -> None:
    row = chaos_row("huge and deep replies")
    assert row.survived, row.problems
    assert row.injected == row.detected and row.failed == 0
    assert row.details["slowest_episode_s"] < row.details["episode_timeout_s"]


def test_an_answer_over_a_limit_is_counted_by_what_happened() -> None:
    from agent.episode import fallback_kind

    with pytest.raises(ToolError) as long_info:
        reply_body("x" * 30_000)
    with pytest.raises(ToolError) as deep_info:
        list(json_values('{"box": ' + nested() + "}"))
    assert fallback_kind(long_info.value) == "oversized" and fallback_kind(deep_info.value) == "malformed"
    assert fallback_kind(ToolError("no usable query")) == "tool_error"  # others as before
