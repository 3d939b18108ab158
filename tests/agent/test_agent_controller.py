"""The ``agent`` controller against a scripted OpenAI-compatible server (real SDK, real HTTP)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_agent_ctl import (
    FAKE_KEY,
    PROPOSER,
    RANKER,
    EmptyPropose,
    best_index,
    free_port_url,
    iou,
    make_client,
    make_session,
    run_episode,
    scene_image,
    tool_messages,
)
from PIL import Image as PILImage

from agent.submit import SubmittedRanking
from bench.doubles.scripted_server import Call, ScriptedServer, Status, Text, ToolCalls, endless_tool_calls
from tools.errors import ConfigError
from tools.types import Ranking

UNSURE = "the scarlet tile"  # no word the attribute ranker knows: a flat, unsure ranking
SURE = "the red star on the left"  # passes the default guard (conf ~1.0)


def events(trace: Path) -> list[dict]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


def test_propose_rank_submit_chooses_the_submitted_candidate(tmp_path: Path) -> None:
    scene, image = scene_image(0)
    target = next(o for o in scene.objects if (o.color, o.shape) == ("red", "square"))
    want = best_index(image, target.mask)
    script = [
        ToolCalls.of((PROPOSER, {})),
        ToolCalls.of((RANKER, {})),
        ToolCalls.of(("submit", {"index": want, "reason": "the red square"})),
    ]
    with ScriptedServer(script) as srv:
        session = make_session(make_client(srv), tmp_path / "trace.jsonl")
        result = run_episode(session, image, UNSURE)
    assert result.error is None
    assert result.stop_reason == "agent_submit"
    assert result.chosen == want and result.candidates[0]["index"] == want
    assert iou(result.mask, target.mask) > 0.95
    assert result.turns == 3 and len(srv.requests) == 3
    # conf is what the ranker gave the submitted candidate, not a made-up 1.0
    assert 0.0 < result.conf < 0.5
    first = srv.requests[0].json
    offered = {t["function"]["name"] for t in first["tools"]}
    # The proposer's prompt twin joins them; not sam_propose / sam_prompt / clip_rank.
    assert offered == {PROPOSER, RANKER, "refine_query", "region_prompt", "submit"}
    assert len(srv.requests[0].image_urls()) == 1
    assert json.loads(tool_messages(srv.requests[1])[0]["content"])["n_proposals"] > 0
    ranked = json.loads(tool_messages(srv.requests[2])[-1]["content"])
    assert {"index", "prob", "box"} <= set(ranked["top"][0]) and ranked["conf"] < 0.5
    assert len(srv.requests[2].image_urls()) == 2  # the image plus the candidate overlay
    names = [e["event"] for e in events(tmp_path / "trace.jsonl")]
    assert names.count("turn") == 3 and names.count("vlm_call") == 3
    stop = next(e for e in events(tmp_path / "trace.jsonl") if e["event"] == "agent_stop")
    assert stop["reason"] == "agent_submit"
    assert result.costs.tools["vlm"].calls == 3 and result.costs.tools["vlm"].tokens_in == 450


def test_guard_pass_ends_the_episode_without_another_vlm_request(tmp_path: Path) -> None:
    _, image = scene_image(0)
    script = [
        ToolCalls.of((PROPOSER, {})),
        ToolCalls.of((RANKER, {})),
        ToolCalls.of(("submit", {"index": 0})),
    ]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv), tmp_path / "t.jsonl"), image, SURE)
    assert result.stop_reason == "guard" and result.turns == 2
    assert len(srv.requests) == 2 and srv.pending == 1  # the submit was never asked for
    guards = [e for e in events(tmp_path / "t.jsonl") if e["event"] == "guard"]
    assert len(guards) == 1 and guards[0]["passed"] is True


def test_warm_start_sure_ranking_costs_no_vlm_call(tmp_path: Path) -> None:
    _, image = scene_image(0)
    with ScriptedServer([ToolCalls.of(("submit", {"index": 0}))]) as srv:
        session = make_session(make_client(srv), tmp_path / "t.jsonl", warm_start=True)
        result = run_episode(session, image, SURE)
    assert result.stop_reason == "guard" and result.turns == 0 and len(srv.requests) == 0
    assert "vlm" not in result.costs.tools and result.costs.calls(RANKER) == 1


def test_warm_start_unsure_ranking_opens_with_the_ranked_candidates(tmp_path: Path) -> None:
    scene, image = scene_image(0)
    target = next(o for o in scene.objects if (o.color, o.shape) == ("red", "square"))
    want = best_index(image, target.mask)
    with ScriptedServer([ToolCalls.of(("submit", {"index": want}))]) as srv:
        session = make_session(make_client(srv), tmp_path / "t.jsonl", warm_start=True)
        result = run_episode(session, image, UNSURE)
    assert result.stop_reason == "agent_submit" and result.turns == 1 and result.chosen == want
    first = srv.requests[0]
    assert any('"top"' in t and RANKER in t for t in first.text_parts())
    assert len(first.image_urls()) == 2  # the image and the overlay of the ranked candidates


def test_max_turns_with_endless_tool_calls_stops_with_max_iter() -> None:
    _, image = scene_image(0)
    with ScriptedServer([ToolCalls.of((PROPOSER, {}))], policy=endless_tool_calls(RANKER, {})) as srv:
        result = run_episode(make_session(make_client(srv), max_turns=3), image, UNSURE)
    assert result.stop_reason == "max_iter" and result.turns == 3
    assert len(srv.requests) == 3
    assert result.chosen >= 0  # the best candidate so far
    assert any("max_turns=3" in n for n in result.notes)
    # The same ranking twice: its overlay is not sent again.
    assert len(srv.requests[2].image_urls()) == 2


def test_bad_calls_are_answered_with_errors_and_the_episode_goes_on() -> None:
    _, image = scene_image(0)
    bad = ToolCalls.of(
        ("zoom_in", {"factor": 2}),
        Call(PROPOSER, '{"min_area": 64,'),
        (PROPOSER, {"min_area": -5}),
        ("submit", {"index": 0}),
        Call(PROPOSER, "[1, 2]"),
    )
    script = [bad, ToolCalls.of((PROPOSER, {})), ToolCalls.of((RANKER, {}))]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv)), image, SURE)
    assert result.stop_reason == "guard" and result.error is None
    answers = tool_messages(srv.requests[1])
    assert [m["tool_call_id"] for m in answers] == [f"call_1_{i}" for i in range(5)]
    errors = [json.loads(m["content"])["error"] for m in answers]
    assert "unknown tool 'zoom_in'" in errors[0] and "submit" in errors[0]
    assert "not valid JSON" in errors[1]
    assert "invalid arguments" in errors[2] and "min_area" in errors[2]
    assert "nothing ranked yet" in errors[3]
    assert "JSON object" in errors[4]
    assert len(srv.requests) == 3


def test_several_calls_in_one_turn_are_all_executed_and_answered() -> None:
    scene, image = scene_image(0)
    target = next(o for o in scene.objects if (o.color, o.shape) == ("red", "square"))
    want = best_index(image, target.mask)
    script = [
        ToolCalls.of((PROPOSER, {}), (RANKER, {"query": "scarlet tile"})),
        ToolCalls.of(("submit", {"index": 999}), ("submit", {"index": want})),
    ]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv)), image, UNSURE)
    answers = tool_messages(srv.requests[1])
    assert len(answers) == 2
    assert "n_proposals" in json.loads(answers[0]["content"])
    assert "top" in json.loads(answers[1]["content"])
    overlay = srv.requests[1].image_urls()[-1]
    shown = PILImage.open(io.BytesIO(base64.b64decode(overlay.split(",", 1)[1])))
    assert max(shown.size) <= 448
    assert result.stop_reason == "agent_submit" and result.chosen == want  # 999 was rejected
    assert result.queries[-1] == "scarlet tile"  # the agent's wording is recorded


def test_no_tool_call_is_nudged_once_then_falls_back(tmp_path: Path) -> None:
    _, image = scene_image(0)
    with ScriptedServer([Text("It is the red one."), Text("Still the red one.")]) as srv:
        result = run_episode(make_session(make_client(srv), tmp_path / "t.jsonl"), image, SURE)
    assert len(srv.requests) == 2
    last = srv.requests[1].json["messages"][-1]
    assert last["role"] == "user" and "call a tool or submit" in last["content"].lower()
    assert result.stop_reason == "fallback" and result.error is None
    assert result.chosen >= 0 and result.costs.calls(PROPOSER) == 1 and result.costs.calls(RANKER) == 1
    assert any("no tool call" in n for n in result.notes)
    stop = [e for e in events(tmp_path / "t.jsonl") if e["event"] == "agent_stop"]
    assert len(stop) == 1 and stop[0]["reason"] == "fallback"


@pytest.mark.parametrize("outage", ["500s", "down"])
def test_vlm_outage_falls_back_to_the_best_candidate(outage: str) -> None:
    _, image = scene_image(0)
    if outage == "down":
        result = run_episode(make_session(make_client(free_port_url())), image, SURE)
    else:
        with ScriptedServer([Status(500), Status(503)]) as srv:
            result = run_episode(make_session(make_client(srv)), image, SURE)
        assert len(srv.requests) == 2  # first attempt + max_retries=1
    assert result.stop_reason == "fallback" and result.error is None
    assert result.chosen >= 0 and result.turns == 0
    assert result.costs.tools["vlm"].errors == 1
    assert any("fell back" in n for n in result.notes)


def test_outage_after_ranking_keeps_the_agents_ranking() -> None:
    _, image = scene_image(0)
    script = [ToolCalls.of((PROPOSER, {}), (RANKER, {"query": "red square"})), Status(500), Status(500)]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv), tau_conf=1.0), image, UNSURE)
    assert result.stop_reason == "fallback"
    assert result.costs.calls(RANKER) == 1  # no direct re-rank: the agent's ranking stands
    assert result.queries[-1] == "red square"


@pytest.mark.parametrize(
    ("budget", "turns", "why"),
    [({"budget_tokens": 300}, 2, "token budget"), ({"budget_usd": 0.0002}, 1, "USD budget")],
)
def test_budget_stops_the_episode(budget: dict, turns: int, why: str) -> None:
    _, image = scene_image(0)
    # Each reply: 150 tokens in, 30 out; priced 1 and 2 USD per million -> 0.00021 USD.
    with ScriptedServer([ToolCalls.of((PROPOSER, {}))], policy=endless_tool_calls(RANKER, {})) as srv:
        result = run_episode(make_session(make_client(srv), **budget), image, UNSURE)
    assert result.stop_reason == "budget"
    assert len(srv.requests) == turns and result.turns == turns
    assert any(why in n for n in result.notes)
    assert result.chosen >= 0  # ranked directly when the budget ran out before any ranking


def test_the_api_key_never_reaches_the_trace(tmp_path: Path) -> None:
    _, image = scene_image(0)
    script = [
        Status(500, message=f"upstream rejected key {FAKE_KEY}"),
        Text(f"My key is {FAKE_KEY}."),
        ToolCalls.of((PROPOSER, {"min_area": 64}), (RANKER, {})),
        ToolCalls.of(("submit", {"index": 0, "reason": f"because {FAKE_KEY}"})),
    ]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv), tmp_path / "t.jsonl"), image, UNSURE)
    assert result.stop_reason == "agent_submit"
    assert srv.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"  # the key was in use
    text = (tmp_path / "t.jsonl").read_text()
    assert FAKE_KEY not in text and "fake-agent-key" not in text
    assert "upstream rejected key" in text  # the error itself was traced


def test_agent_without_a_vlm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a VLM"):
        make_session(None)  # the spec requires a VLM: refused before any example


def test_submitted_ranking_reports_the_rankers_view_of_the_choice() -> None:
    base = Ranking.from_scores(np.array([3.0, 1.0, 2.0]), "q", 1.0)
    sub = SubmittedRanking.of(base, 2)
    assert sub.top == 2 and list(sub.order) == [2, 0, 1]
    assert sub.conf == pytest.approx(float(base.probs[2]))
    assert sub.gap == pytest.approx(float(base.probs[2] - base.probs[0])) and sub.gap < 0


def test_no_candidates_at_all_ends_recorded_not_lost(tmp_path: Path) -> None:
    _, image = scene_image(0)
    script = [ToolCalls.of(("empty_propose", {}), (RANKER, {})), Text("Nothing there."), Text("Nothing.")]
    with ScriptedServer(script) as srv:
        session = make_session(
            make_client(srv), tmp_path / "t.jsonl", {"empty_propose": EmptyPropose}, proposer="empty_propose"
        )
        result = run_episode(session, image, SURE)
    assert json.loads(tool_messages(srv.requests[1])[0]["content"])["n_proposals"] == 0
    assert result.stop_reason == "fallback" and result.chosen == -1
    assert result.error is not None and "no candidate masks" in result.error
    stop = [e for e in events(tmp_path / "t.jsonl") if e["event"] == "agent_stop"]
    assert stop[0]["reason"] == "fallback" and "ToolError" in stop[0]["detail"]


def test_a_broken_optional_plugin_does_not_cost_the_episode(tmp_path: Path) -> None:
    from tools.errors import CheckpointError

    def broken_plugin(_settings: object) -> object:
        raise CheckpointError("plugin weights missing")

    _, image = scene_image(0)
    with ScriptedServer([ToolCalls.of((PROPOSER, {})), ToolCalls.of((RANKER, {}))]) as srv:
        session = make_session(make_client(srv), tmp_path / "t.jsonl", extra_tools={"broken": broken_plugin})
        result = run_episode(session, image, SURE)
    assert result.ok and result.stop_reason == "guard"
    offered = {t["function"]["name"] for t in srv.requests[0].json["tools"]}
    assert "broken" not in offered
    tools_event = next(e for e in events(tmp_path / "t.jsonl") if e["event"] == "agent_tools")
    assert tools_event["skipped"] == ["broken"]


def test_rejected_calls_are_traced_like_every_tool_call(tmp_path: Path) -> None:
    _, image = scene_image(0)
    script = [ToolCalls.of(("zoom_in", {"factor": 2}), (PROPOSER, {})), ToolCalls.of((RANKER, {}))]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv), tmp_path / "t.jsonl"), image, SURE)
    assert result.stop_reason == "guard"
    calls = [e for e in events(tmp_path / "t.jsonl") if e["event"] == "tool_call"]
    assert [(c["tool"], c.get("rejected", False)) for c in calls] == [
        ("zoom_in", True),
        (PROPOSER, False),
        (RANKER, False),
    ]
    shared = {"tool", "step", "args", "seconds", "cache_hit"}
    assert all(shared <= set(c) for c in calls)
    assert "unknown tool 'zoom_in'" in calls[0]["error"] and calls[0]["args"] == '{"factor": 2}'
    assert "result" in calls[1] and "error" not in calls[1]
