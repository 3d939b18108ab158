""" "No such object" as an answer: every controller can give it (ground's VLM says null, the
loop's VLM refiner says no_match, the agent submits no_match), it is recorded as the stop
reason ``not_found``, and ``EpisodeConfig.not_found`` decides whether it is an empty mask
(``empty``: data sets with no-target expressions) or the best candidate (``keep``). The VLM is
a scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_agent_ctl import PROPOSER, RANKER, make_client, make_session, run_episode

from agent.episode import EpisodeConfig
from agent.session import Session
from agent.tracing import Tracer
from bench.doubles.scripted_server import Call, ScriptedServer, Text, ToolCalls
from bench.runtime import describe_episode
from tools.base import ToolSettings
from tools.errors import ConfigError
from tools.offline.missed_scenes import halo_scene
from tools.offline.scenes import generate_scene
from tools.refine_vlm import NO_MATCH_PROMPT
from tools.registry import ToolRegistry
from tools.types import Image


def _ground(client: Any, **cfg: Any) -> Session:
    config = EpisodeConfig(controller="ground", proposer=PROPOSER, ranker=RANKER, **cfg)
    return Session(ToolRegistry(ToolSettings(vlm=client)), config, tracer=Tracer(None, run_id="t"))


@pytest.mark.parametrize("not_found", ["empty", "keep", None])
def test_ground_not_found_is_an_empty_mask_only_where_the_episode_takes_it(not_found: str | None) -> None:
    ms = halo_scene(1)  # the ranker is unsure here: ground asks the VLM
    image, expression = Image.from_array(ms.scene.image), ms.target.expressions_of("paraphrase")[0]
    with ScriptedServer([Text('{"box": null}')]) as srv:
        result = run_episode(_ground(make_client(srv), not_found=not_found), image, expression)
    assert result.error is None and result.stop_reason == "not_found" and result.mask is not None
    if not_found == "empty":
        assert not result.mask.any() and result.chosen == -1
        assert "not_found: answered with an empty mask" in result.notes
        assert any(n == "ground: the VLM found no such object" for n in result.notes)
    else:  # keep (also the default when unset): the ranker's choice stands
        assert result.mask.any() and result.chosen >= 0
        assert any("kept the ranker's choice" in n for n in result.notes)


def _loop(client: Any, not_found: str | None) -> Session:
    settings = ToolSettings(vlm=client, options={"refine_query": {"refiner": "vlm"}})
    config = EpisodeConfig(
        controller="loop", proposer=PROPOSER, ranker=RANKER, tau_conf=1.0, tau_gap=1.0, not_found=not_found
    )
    return Session(ToolRegistry(settings), config, tracer=Tracer(None, run_id="t"))


def test_the_loops_vlm_refiner_may_answer_that_nothing_matches() -> None:
    scene = generate_scene(3)
    image = Image.from_array(scene.image)
    reply = Text('{"query": null, "no_match": true, "rationale": "there is no unicorn"}')
    with ScriptedServer([reply]) as srv:
        result = run_episode(_loop(make_client(srv), "empty"), image, "the purple unicorn")
    assert result.stop_reason == "not_found" and result.mask is not None and not result.mask.any()
    assert any("nothing in the image matches" in n for n in result.notes)
    assert any(NO_MATCH_PROMPT in t for t in srv.requests[0].text_parts())  # the answer was offered
    assert result.queries == ["the purple unicorn"]  # no rewrite was ranked


def test_without_empty_answers_the_refiner_is_not_offered_no_match() -> None:
    scene = generate_scene(3)
    target = scene.objects[0]
    reply = Text(f'{{"query": "{target.expressions[0]}", "rationale": "canonical words"}}')
    with ScriptedServer([reply, reply, reply]) as srv:
        result = run_episode(_loop(make_client(srv), None), Image.from_array(scene.image), "that thing")
    assert not any(NO_MATCH_PROMPT in t for r in srv.requests for t in r.text_parts())
    assert result.stop_reason != "not_found" and result.mask is not None and result.mask.any()


def _submit_schema(request: Any) -> dict[str, Any]:
    tools = (request.json or {}).get("tools", [])
    return next(t["function"] for t in tools if t["function"]["name"] == "submit")


def test_the_agent_submits_no_match_where_the_episode_takes_it() -> None:
    scene = generate_scene(5)
    script = [ToolCalls.of(Call("submit", {"no_match": True, "reason": "no unicorn here"}))]
    with ScriptedServer(script) as srv:
        session = make_session(make_client(srv), not_found="empty")
        result = run_episode(session, Image.from_array(scene.image), "the purple unicorn")
    assert result.stop_reason == "not_found" and result.mask is not None and not result.mask.any()
    schema = _submit_schema(srv.requests[0])
    assert "no_match" in schema["parameters"]["properties"] and "index" not in schema["parameters"].get(
        "required", []
    )
    assert any("no_match: true" in t for t in srv.requests[0].text_parts())  # the system prompt says so


def test_the_agent_is_not_offered_no_match_on_single_target_data() -> None:
    scene = generate_scene(5)
    script = [
        ToolCalls.of(Call("submit", {"no_match": True})),  # not on offer: sent back as an error
        ToolCalls.of(Call(PROPOSER, {})),
        ToolCalls.of(Call(RANKER, {})),
        ToolCalls.of(Call("submit", {"index": 0})),
    ]
    with ScriptedServer(script) as srv:
        result = run_episode(make_session(make_client(srv)), Image.from_array(scene.image), "the red one")
    schema = _submit_schema(srv.requests[0])
    assert (
        "no_match" not in schema["parameters"]["properties"] and "index" in schema["parameters"]["required"]
    )
    assert result.stop_reason == "agent_submit" and result.mask is not None and result.mask.any()


def test_an_episode_that_found_nothing_at_all_answers_empty_either_way() -> None:
    # Any controller's not_found with no candidate to keep: the only answer is an empty mask.
    scene = generate_scene(5)
    with ScriptedServer([ToolCalls.of(Call("submit", {"no_match": True}))]) as srv:
        result = run_episode(
            make_session(make_client(srv), not_found="empty"), Image.from_array(scene.image), "x y"
        )
    assert result.n_proposals == 0 and result.mask is not None and result.mask.shape == scene.image.shape[:2]


def test_not_found_is_checked_and_recorded_only_when_set() -> None:
    with pytest.raises(ConfigError, match="--not-found must be 'keep' or 'empty'"):
        EpisodeConfig(not_found="maybe")  # type: ignore[arg-type]
    assert "not_found" not in describe_episode(EpisodeConfig())  # unset: config.json as before
    assert describe_episode(EpisodeConfig(not_found="empty"))["not_found"] == "empty"


def test_a_no_match_rewrite_survives_the_cache_record_and_others_record_as_before() -> None:
    from tools.types import Refinement

    none = Refinement("", "no unicorn", "vlm:test", no_match=True)
    assert Refinement.from_record(*none.to_record()).no_match is True
    plain = Refinement("the red dog", "colour", "rules")
    assert "no_match" not in plain.to_record()[1] and not Refinement.from_record(*plain.to_record()).no_match
    with pytest.raises(ValueError, match="no_match"):
        Refinement.from_record({}, {**plain.to_record()[1], "no_match": "yes"})
