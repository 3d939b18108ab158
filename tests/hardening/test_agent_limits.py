"""The VLM cannot make an episode do unbounded work or run past its deadline,
and huge tool arguments or names neither bloat the trace nor go back to the model whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from agent.controller_options import AgentOptions
from agent.controllers import get_controller
from agent.episode import EpisodeConfig
from agent.tracing import Tracer
from agent.vlm_reply import ToolCall
from tools.errors import ConfigError


@pytest.mark.slow
def test_tool_calls_are_capped_and_slow_episodes_fall_back() -> None:
    row = chaos_row("unbounded VLM work")
    assert row.survived, row.problems
    assert row.details["most_tool_calls"] <= 12 + 4  # the row's cap, plus warm start and fallback
    assert row.details["slowest_timed_out_s"] < 6.0
    assert row.fallback >= row.details["served"]["slow"] > 0


def test_limits_are_settings_with_checked_values() -> None:
    agent = get_controller("agent").options()
    assert isinstance(agent, AgentOptions)
    assert agent.max_tool_calls >= 10 and agent.max_calls_per_reply >= 2 and EpisodeConfig().episode_timeout_s
    with pytest.raises(
        ConfigError, match=r"^controller agent: option max_tool_calls: .*greater than or equal to 1"
    ):
        get_controller("agent").options({"max_tool_calls": 0})
    with pytest.raises(ConfigError, match="episode-timeout"):
        EpisodeConfig(episode_timeout_s=0)


@pytest.mark.slow
def test_huge_arguments_and_names_stay_out_of_trace_and_requests() -> None:
    row = chaos_row("huge tool args and names")
    assert row.survived, row.problems
    assert row.details["trace_bytes"] < 2 * 2**20 and row.details["largest_request_bytes"] < 256 * 2**10


def test_every_logged_string_and_argument_is_cut_with_its_length(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with Tracer(path) as tracer:
        tracer.event("tool_call", tool="N" * 5_000_000, args={"x": "A" * 10_000_000, "l": list(range(10**5))})
    line = path.read_bytes()
    assert len(line) < 100_000  # was 15 MB
    event = json.loads(line)
    assert event["tool"].endswith("[truncated: 5000000 chars]")
    assert event["args"]["x"].endswith("[truncated: 10000000 chars]")
    assert event["args"]["l"][-1] == "…[truncated: 100000 items]"


def test_a_refused_call_is_echoed_back_short() -> None:
    call = ToolCall("c1", "N" * 1_000_000, json.dumps({"x": "A" * 1_000_000}))
    message = call.to_message()["function"]
    assert len(message["name"]) < 200 and len(message["arguments"]) < 200
    with pytest.raises(ValueError, match="characters long"):
        call.parse_arguments()
