"""``--vlm-json-schema``: ``ground`` and the VLM refiner ask for schema-shaped replies where the
server takes ``response_format``; a server that refuses it is asked again without, once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import anyio
import numpy as np
from helpers_conventions import run_family

from agent.vlm import VLMClient, VLMConfig
from agent.vlm_profile import PROFILES
from bench.doubles.scripted_server import ScriptedServer
from bench.doubles.vlm_conventions import ConventionVLM
from tools.base import Workspace
from tools.refine_vlm import refine_with_vlm
from tools.types import Image

GEMINI = PROFILES["gemini"]  # asks for JSON schemas by default


def test_ground_gets_the_schema_shaped_answer() -> None:
    run = run_family("ground", "gemini", GEMINI, json_schema="accept")
    assert min(run.ious) >= 0.9
    for request in run.requests:
        fmt = request.json["response_format"]  # type: ignore[index]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "ground_answer"
        assert list(fmt["json_schema"]["schema"]["properties"]) == ["box_2d"]
    system = run.requests[0].json["messages"][0]["content"]  # type: ignore[index]
    assert '{"box_2d": [ymin, xmin, ymax, xmax]}' in system


def test_a_refused_schema_is_dropped_once_and_the_trace_says_so(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    run = run_family("ground", "gemini", GEMINI, json_schema="refuse", trace=trace)
    assert min(run.ious) >= 0.9 and {r.stop_reason for r in run.results} == {"grounded"}
    with_schema = [r for r in run.requests if "response_format" in (r.json or {})]
    assert len(with_schema) == 1 and len(run.requests) == len(run.results) + 1
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [e["dropped"] for e in events if e["event"] == "ground"] == [["json_schema"]] * len(run.results)
    assert next(e for e in events if e["event"] == "vlm_call")["status"] == 400


def test_without_the_flag_no_schema_is_sent() -> None:
    run = run_family("ground", "gemini", replace(GEMINI, json_schema=False), json_schema="refuse")
    assert min(run.ious) >= 0.9 and all("response_format" not in (r.json or {}) for r in run.requests)


def test_the_refiner_asks_for_its_schema() -> None:
    policy = ConventionVLM("pixels", json_schema="accept")

    async def go() -> str:
        with ScriptedServer(policy=policy) as srv:
            config = VLMConfig(base_url=srv.base_url, api_key="k", max_retries=0, profile=GEMINI)
            async with VLMClient(config) as client:
                ws = Workspace(Image.from_array(np.zeros((40, 60, 3), np.uint8)), "the dog")
                refinement = await refine_with_vlm(client, ws, None)
            fmt = srv.requests[0].json["response_format"]  # type: ignore[index]
            assert fmt["json_schema"]["name"] == "refined_query"
            return refinement.query

    assert anyio.run(go) == "the object"
