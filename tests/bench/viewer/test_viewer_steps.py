"""Ranking steps and VLM transcripts on the example page, from real runs: a loop run (rules
refiner) and an agent run against the oracle VLM on a local scripted server."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PLANTED_KEY
from helpers_viewer import client_for, png, records, text_of
from PIL import Image as PILImage
from starlette.testclient import TestClient

from bench.rle import decode_rle

EXAMPLE = "scene-0:1:3"  # 'jade star': unsure, refined into 'the green star'
_IMG_SRC = re.compile(r'class="vlm-img" alt="image shown to the VLM" src="([^"]+)"')


def _episode_events(run: Path, sample_id: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    return [e for e in events if e.get("sample_id") == sample_id]


def test_an_older_run_says_not_recorded(runs: dict[str, Path]) -> None:
    folder = runs["loop"]
    lines = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    for rec in lines:
        rec.pop("rank_steps")  # as a run written before ranking steps were recorded
    (folder / "samples.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    with client_for(folder) as client:
        text = text_of(client.get("/example", params={"id": EXAMPLE}).text)
        thumb = client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": 0, "cand": 0})
    assert "Candidate masks of each ranking step: not recorded in this run." in text
    assert thumb.status_code == 404


def test_every_ranking_step_with_its_candidates(loop_client: TestClient, runs: dict[str, Path]) -> None:
    rec = records(runs["loop"])[EXAMPLE]
    steps = rec["rank_steps"]
    ranked = [e for e in _episode_events(runs["loop"], EXAMPLE) if e.get("tool") == "attribute_rank"]
    assert [s["step"] for s in steps] == [e["step"] for e in ranked]  # every ranking, in order
    assert [s["query"] for s in steps] == rec["queries"] == ["jade star", "the green star"]
    tops = [decode_rle(s["candidates"][0]["mask"]) for s in steps]
    assert any(np.array_equal(top, decode_rle(rec["mask"])) for top in tops)  # the answer is a top-1
    assert all(len(s["candidates"]) == 4 and s["candidates"][0]["origin"] == "region_propose" for s in steps)
    text = text_of(loop_client.get("/example", params={"id": EXAMPLE}).text)
    for s in steps:
        assert f"step {s['step']}: {s['query']}" in text
        assert all(f"#{c['index']} p={c['prob']:.3f}" in text for c in s["candidates"])
    thumb = {
        (i, j): loop_client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": i, "cand": j})
        for i in range(len(steps))
        for j in range(4)
    }
    assert all(t.status_code == 200 and t.headers["content-type"] == "image/png" for t in thumb.values())
    pictures = {k: png(t.content) for k, t in thumb.items()}
    assert not np.array_equal(pictures[(0, 0)], pictures[(0, 1)])  # another mask
    missing = loop_client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": len(steps), "cand": 0})
    bad = loop_client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": "x", "cand": 0})
    assert missing.status_code == bad.status_code == 404


def test_the_agent_records_its_rankings_and_what_the_vlm_saw(agent_run: Path) -> None:
    recs = records(agent_run)
    submitted = [r for r in recs.values() if r["stop_reason"] == "agent_submit"]
    assert submitted, "the oracle makes unsure examples submit a drawn candidate"
    for rec in submitted:
        events = _episode_events(agent_run, rec["example_id"])
        ranked = [e["step"] for e in events if e.get("tool") == "attribute_rank" and not e.get("error")]
        assert [s["step"] for s in rec["rank_steps"]] == ranked and len(ranked) >= 2
        assert all(c["origin"] for s in rec["rank_steps"] for c in s["candidates"])
        calls = [e for e in events if e["event"] == "vlm_call"]
        logged = [m["i"] for c in calls for m in c["messages"]]
        assert len(logged) == len(set(logged))  # each message once per episode
        assert calls[-1]["sent"] > calls[0]["sent"] and all(c["reply"]["role"] == "assistant" for c in calls)
        replies = {c["reply"]["tool_calls"][0]["name"] for c in calls}
        assert {"region_prompt", "attribute_rank", "submit"} <= replies
    referenced = {
        part["file"]
        for e in _episode_events_all(agent_run)
        for m in e.get("messages", [])
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image"
    }
    stored = {f"vlm_images/{p.name}" for p in (agent_run / "vlm_images").iterdir()}
    assert referenced == stored and len(stored) >= 2  # the image and the candidate overlays
    for path in (agent_run / "vlm_images").iterdir():  # named by their content, decodable
        data = path.read_bytes()
        assert path.name == hashlib.sha256(data).hexdigest() + ".jpg"
        assert PILImage.open(io.BytesIO(data)).format == "JPEG"


def _episode_events_all(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]


def test_the_example_page_shows_the_transcript_and_its_images(agent_run: Path) -> None:
    rec = next(r for r in records(agent_run).values() if r["stop_reason"] == "agent_submit")
    with client_for(agent_run) as client:
        page = client.get("/example", params={"id": rec["example_id"]})
        sources = [src.replace("&amp;", "&") for src in _IMG_SRC.findall(page.text)]
        images = [client.get(src) for src in sources]
    text = text_of(page.text)
    assert "You segment the single object" in text and f'Referring expression: "{rec["sentence"]}"' in text
    assert "→ region_prompt({" in text and "→ submit({" in text and "message 0" in text
    assert len(sources) >= 2 and all(i.status_code == 200 for i in images)
    stored = {p.read_bytes() for p in (agent_run / "vlm_images").iterdir()}
    assert all(i.content in stored and i.headers["content-type"] == "image/jpeg" for i in images)
    assert f"step {rec['rank_steps'][-1]['step']}: {rec['rank_steps'][-1]['query']}" in text


def test_no_secret_in_the_trace_or_the_images(agent_run: Path) -> None:
    files = [p for p in agent_run.rglob("*") if p.is_file()]
    assert any(p.parent.name == "vlm_images" for p in files)
    leaks = [p for p in files if PLANTED_KEY.encode() in p.read_bytes()]
    assert leaks == []


def _add_transcript(folder: Path, image_ref: str) -> bytes:
    """Put a vlm_call with messages into EXAMPLE's episode and a PNG into vlm_images/."""
    (folder / "vlm_images").mkdir(exist_ok=True)
    buf = io.BytesIO()
    PILImage.new("RGB", (3, 2), (1, 2, 3)).save(buf, format="PNG")
    (folder / "vlm_images" / "shown.png").write_bytes(buf.getvalue())
    event = {
        "run_id": "r", "sample_id": EXAMPLE, "event": "vlm_call", "model": "m", "attempt": 1, "sent": 2,
        "messages": [
            {"i": 0, "role": "system", "content": "You rank masks."},
            {"i": 1, "role": "user", "content": [{"type": "text", "text": "Which is the jade star?"},
                                                 {"type": "image", "file": image_ref}]},
        ],
    }  # fmt: skip
    lines = (folder / "trace.jsonl").read_text().splitlines()
    end = next(
        i for i, line in enumerate(lines) if EXAMPLE in line and json.loads(line)["event"] == "episode_end"
    )
    lines.insert(end, json.dumps(event))
    (folder / "trace.jsonl").write_text("\n".join(lines) + "\n")
    return buf.getvalue()


@pytest.mark.slow
def test_a_transcript_image_is_served_only_from_vlm_images(runs: dict[str, Path]) -> None:
    folder = runs["loop"]
    data = _add_transcript(folder, "vlm_images/shown.png")
    with client_for(folder) as client:
        page = client.get("/example", params={"id": EXAMPLE})
        image = client.get(_IMG_SRC.findall(page.text)[-1].replace("&amp;", "&"))
    assert "You rank masks." in text_of(page.text) and image.content == data
    for ref in ("../samples.jsonl", "vlm_images/../samples.jsonl", "/etc/passwd", "vlm_images/shown.txt"):
        _add_transcript(folder, ref)  # each call adds the newest transcript: the last image on the page
        with client_for(folder) as client:
            page = client.get("/example", params={"id": EXAMPLE})
            src = _IMG_SRC.findall(page.text)[-1].replace("&amp;", "&")
            assert client.get(src).status_code == 404, ref
