"""VLM transcripts in the trace: each message once per episode, images as files named by their
content, text cut without breaking the structure, images carried from a collecting sink."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from agent.trace_images import VLM_IMAGE_DIR
from agent.tracing import CURRENT_LOG, MAX_STRING, Collected, CollectingSink, Tracer, collect_lines
from agent.transcript import CURRENT_TRANSCRIPT, MAX_MESSAGES, Transcript, log_vlm_call

SECRET = "sk-transcript-secret-0123456789"


def _jpeg_url(colour: tuple[int, int, int]) -> tuple[str, bytes]:
    buf = io.BytesIO()
    PILImage.new("RGB", (4, 3), colour).save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), buf.getvalue()


def _user(text: str, url: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
    }


def _reply(name: str) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": '{"index": 2}'}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def test_each_message_is_logged_once_per_episode(tmp_path: Path) -> None:
    url, data = _jpeg_url((10, 200, 30))
    transcript = Transcript(Tracer(tmp_path / "trace.jsonl"))
    first = [{"role": "system", "content": "You segment."}, _user("the dog", url)]
    one = transcript.fields(first, _reply("attribute_rank"))
    assert [m["i"] for m in one["messages"]] == [0, 1] and one["sent"] == 2
    assert one["reply"]["tool_calls"] == [{"name": "attribute_rank", "arguments": '{"index": 2}'}]
    image = one["messages"][1]["content"][1]
    name = hashlib.sha256(data).hexdigest() + ".jpg"
    assert image == {"type": "image", "file": f"{VLM_IMAGE_DIR}/{name}", "bytes": len(data)}
    assert (tmp_path / VLM_IMAGE_DIR / name).read_bytes() == data
    # The next turn resends everything, the reply included: only the tool answer is new.
    second = [*first, _reply("attribute_rank"), {"role": "tool", "tool_call_id": "c1", "content": "{}"}]
    two = transcript.fields(second, _reply("submit"))
    assert [(m["i"], m["role"]) for m in two["messages"]] == [(3, "tool")] and two["sent"] == 4
    assert transcript.fields(second)["messages"] == []  # a retry of the same request
    # A message replaced in place (an older overlay) is new; the same image is stored once.
    third = [
        *second[:1],
        {"role": "user", "content": "(older overlay removed)"},
        *second[2:],
        _user("x", url),
    ]
    assert [m["i"] for m in transcript.fields(third)["messages"]] == [1, 4]
    assert len(list((tmp_path / VLM_IMAGE_DIR).iterdir())) == 1
    assert Transcript(None).fields(first)["messages"][1]["content"][1]["missing"]  # a new episode


def test_other_image_urls_and_broken_data_urls_are_said_so(tmp_path: Path) -> None:
    transcript = Transcript(Tracer(tmp_path / "trace.jsonl"))
    parts = transcript.fields(
        [_user("a", "https://example.org/cat.jpg"), _user("b", "data:image/png;base64,@@@")]
    )
    first, second = (m["content"][1] for m in parts["messages"])
    assert first == {"type": "image", "url": "https://example.org/cat.jpg"}
    assert "missing" in second and not (tmp_path / VLM_IMAGE_DIR).exists()


def test_long_texts_are_cut_and_the_structure_survives_the_tracer(tmp_path: Path) -> None:
    url, _ = _jpeg_url((0, 0, 0))
    messages = [_user(f"{k} {SECRET} " + "word " * 1500, url) for k in range(MAX_MESSAGES + 5)]
    with Tracer(tmp_path / "trace.jsonl", run_id="r") as tracer:
        log_token = CURRENT_LOG.set(tracer.bind(sample_id="s"))
        transcript_token = CURRENT_TRANSCRIPT.set(Transcript(tracer))
        try:
            log_vlm_call(
                {"model": "m", "attempt": 1, "messages": messages, "reply_message": _reply("submit")}
            )
        finally:
            CURRENT_TRANSCRIPT.reset(transcript_token)
            CURRENT_LOG.reset(log_token)
    text = (tmp_path / "trace.jsonl").read_text()
    event = json.loads(text)
    assert SECRET not in text and event["event"] == "vlm_call" and event["sent"] == MAX_MESSAGES + 5
    assert len(event["messages"]) == MAX_MESSAGES and event["messages_not_logged"] == 5
    for m in event["messages"]:  # every message keeps its shape, however much was cut
        assert isinstance(m, dict) and m["role"] == "user" and isinstance(m["content"], list)
        assert m["content"][1]["type"] == "image" and m["content"][1]["file"].startswith(VLM_IMAGE_DIR)
        assert len(m["content"][0]["text"]) <= MAX_STRING
    cut = [m["content"][0]["text"] for m in event["messages"]]
    assert "…[truncated: " in cut[0] and cut[-1].startswith("[not logged:")  # the event's budget
    assert event["reply"]["tool_calls"][0]["name"] == "submit"


def test_a_collecting_sink_carries_the_images_to_the_driver(tmp_path: Path) -> None:
    url, data = _jpeg_url((1, 2, 3))
    sink = CollectingSink()
    worker = Tracer(None, run_id="r", sink=sink)
    with collect_lines() as collected:
        fields = Transcript(worker).fields([_user("a", url)])
    ref = fields["messages"][0]["content"][1]["file"]
    name = ref.split("/")[1]
    assert collected.images == {name: data} and sink.take_loose() == Collected()
    with Tracer(tmp_path / "trace.jsonl") as driver:
        driver.write_images({**collected.images, "0" * 64 + ".jpg": b"not its digest"})
    assert [p.name for p in (tmp_path / VLM_IMAGE_DIR).iterdir()] == [name]
    assert (tmp_path / ref).read_bytes() == data


def test_a_folder_that_cannot_be_written_turns_images_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / VLM_IMAGE_DIR).write_text("a file where the folder should be")
    url, _ = _jpeg_url((9, 9, 9))
    transcript = Transcript(Tracer(tmp_path / "trace.jsonl"))
    parts = [transcript.fields([_user(str(k), url)])["messages"][0]["content"][1] for k in range(2)]
    assert all(p["type"] == "image" and "missing" in p for p in parts)
    assert sum("not stored for the rest of this run" in r.message for r in caplog.records) == 1
