from __future__ import annotations

from pathlib import Path

import pytest

from agent.tracing import REDACTED, Tracer, redact, redact_text, register_secret


def test_redacts_by_key_value_and_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", "plain-secret-value-42")
    data = {
        "headers": {"Authorization": "Bearer abc.def", "X-Api-Key": "k"},
        "api_key": "whatever",
        "note": "key is plain-secret-value-42 and sk-abcdef123456",
        "tokens_in": 12,
    }
    out = redact(data)
    assert out["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert out["api_key"] == REDACTED and out["tokens_in"] == 12
    assert "plain-secret" not in out["note"] and "sk-abcdef" not in out["note"]


def test_trace_file_never_contains_a_registered_secret(tmp_path: Path) -> None:
    register_secret("flag-passed-key-987")
    with Tracer(tmp_path / "t.jsonl") as tracer:
        tracer.bind(sample_id="x").info("tool_call", error="auth failed for flag-passed-key-987")
    text = (tmp_path / "t.jsonl").read_text()
    assert "flag-passed-key-987" not in text and REDACTED in text
    assert redact_text("nothing secret") == "nothing secret"


def test_a_collecting_sink_keeps_each_example_s_lines_apart(tmp_path: Path) -> None:
    import json

    import anyio

    from agent.tracing import CollectingSink, collect_lines

    sink = CollectingSink()
    tracer = Tracer(None, run_id="r", sink=sink)
    got: dict[str, list[str]] = {}

    async def example(name: str) -> None:
        with collect_lines() as collected:
            for step in range(3):
                tracer.bind(sample_id=name).info("tool_call", step=step)
                await anyio.sleep(0)  # the two examples interleave
        got[name] = collected.lines

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(example, "a")
            tg.start_soon(example, "b")

    anyio.run(main)
    tracer.event("outside")
    for name in ("a", "b"):
        assert [json.loads(line)["sample_id"] for line in got[name]] == [name] * 3
    assert [json.loads(line)["event"] for line in sink.take_loose().lines] == ["outside"]
    assert sink.take_loose().lines == []
    register_secret("worker-side-key-555")
    with Tracer(tmp_path / "t.jsonl") as driver:  # the driver appends a worker's lines, redacted again
        driver.write_lines([*got["a"], '{"error": "bad worker-side-key-555"}'])
    written = (tmp_path / "t.jsonl").read_text().splitlines()
    assert written[:3] == got["a"] and "worker-side-key-555" not in written[3]
