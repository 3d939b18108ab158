"""What the VLM saw, on the Ray engine: workers return the images with the trace lines and the
driver writes both, so a Ray run's folder holds what a local run's holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_ray import run_on
from helpers_runner import offline_options, oracle_for, synthetic

from bench.doubles.scripted_server import ScriptedServer
from bench.engines.compare import answers
from bench.engines.ray_engine import RayEngine
from bench.options import VLMOptions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def _transcripts(run: Path) -> dict[str, list[Any]]:
    """Per sample: each VLM call's logged messages, reply and message count (without the
    server's call ids: it numbers calls in the order requests arrive)."""
    out: dict[str, list[Any]] = {}
    for line in (run / "trace.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["event"] == "vlm_call":
            messages = [{k: v for k, v in m.items() if k != "tool_call_id"} for m in ev["messages"]]
            out.setdefault(ev["sample_id"], []).append((messages, ev["reply"], ev["sent"]))
    return out


def test_ray_workers_bring_the_vlm_images_and_transcripts_to_the_driver(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    examples = synthetic(2)
    episode = {"controller": "agent", "proposer": "region_propose", "ranker": "attribute_rank"}
    with ScriptedServer(policy=oracle_for(examples), max_requests=10_000) as srv:
        options = offline_options(None, episode, vlm=VLMOptions(base_url=srv.base_url))
        run_on(tmp_path / "local", examples, options=options)
        run_on(tmp_path / "ray", examples, options=options, engine=ray_pool)
    local, ray = answers(tmp_path / "local"), answers(tmp_path / "ray")
    assert ray == local and any(len(r["rank_steps"]) >= 2 for r in ray.values())  # ranking steps too
    transcripts = _transcripts(tmp_path / "ray")
    assert transcripts == _transcripts(tmp_path / "local") and transcripts
    images = {
        r: {p.name: p.read_bytes() for p in (tmp_path / r / "vlm_images").iterdir()} for r in ("local", "ray")
    }
    assert images["ray"] == images["local"] and len(images["ray"]) >= 2
    referenced = {
        part["file"].split("/")[1]
        for calls in transcripts.values()
        for messages, _, _ in calls
        for m in messages
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image"
    }
    assert referenced == set(images["ray"])
