"""A planted key (env) that the server echoes in its errors appears in no file, log or output."""

from __future__ import annotations

import anyio
import pytest
from helpers_chaos import chaos_row

from agent.vlm import VLMCallError, VLMClient, VLMConfig
from bench.chaos.secrets import PLANTED_KEY, files_with
from bench.doubles.scripted_server import ScriptedServer, Status


@pytest.mark.slow
def test_no_file_of_the_run_or_cache_shows_the_key() -> None:
    row = chaos_row("planted API key")
    assert row.survived, row.problems
    assert row.details["leaks"] == []
    assert row.injected > 0 and row.detected >= row.injected  # the echoing errors really happened
    assert row.run_dir is not None
    written = [p for p in row.run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {
        "config.json", "summary.json", "samples.jsonl", "trace.jsonl", "report.md", "invocations.jsonl",
    }  # fmt: skip
    assert row.details["output_chars"] > 500  # the CLI's summary, report and trace view were captured
    assert files_with(row.run_dir, [PLANTED_KEY.encode(), b"Bearer"]) == []
    assert b"HTTP 400" in (row.run_dir / "trace.jsonl").read_bytes()  # errors are logged, redacted


def test_echoed_authorization_header_is_redacted_from_errors() -> None:
    key = "sk-echo-test-0123456789"
    with ScriptedServer([Status(400, f"bad header Authorization: Bearer {key}")]) as srv:
        client = VLMClient(VLMConfig(base_url=srv.base_url, api_key=key, max_retries=0, timeout_s=5))
        with pytest.raises(VLMCallError) as info:
            anyio.run(client.complete, [{"role": "user", "content": "hi"}])
    assert srv.requests[0].headers["authorization"] == f"Bearer {key}"
    assert key not in str(info.value) and "Bearer" not in str(info.value)
