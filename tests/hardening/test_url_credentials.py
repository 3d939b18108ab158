"""Credentials inside --vlm-base-url (user:pass@, ?api_key=) never reach a file,
a trace, an error or the terminal, and the request keeps its query string."""

from __future__ import annotations

import anyio
import pytest
from helpers_chaos import chaos_row

from agent.tracing import redact_text
from agent.vlm import VLMCallError, VLMClient, VLMConfig
from bench.chaos.secrets import PLANTED_SECRETS, URL_PASSWORD, URL_QUERY_SECRET, URL_USER
from bench.doubles.scripted_server import ScriptedServer, Status, Text


@pytest.mark.slow
def test_url_credentials_reach_no_file_trace_or_output() -> None:
    row = chaos_row("credentials in base URL")
    assert row.survived, row.problems
    assert row.details["leaks"] == [] and row.secrets == 0
    assert row.details["paths"] == [f"/v1/chat/completions?api_key={URL_QUERY_SECRET}"]
    assert row.injected > 0 and row.detected == row.injected


def test_url_userinfo_query_values_and_basic_credentials_are_redacted() -> None:
    text = (
        f"POST http://{URL_USER}:{URL_PASSWORD}@10.0.0.1:8000/v1/chat/completions?api_key="
        f"{URL_QUERY_SECRET}&v=2. Authorization: Basic Y2hhb3MtdXNlcjpjaGFvcy11cmwtcGFzcy01ODIx"
    )
    out = redact_text(text)
    assert all(secret not in out for secret in (URL_PASSWORD, URL_QUERY_SECRET, "Y2hhb3MtdXNlcjpj"))
    assert "http://[REDACTED]@10.0.0.1:8000/v1/chat/completions?api_key=[REDACTED]&v=[REDACTED]." in out
    assert redact_text("basic shapes, https://example.org/docs.") == "basic shapes, https://example.org/docs."


def _ask(client: VLMClient) -> str:
    async def ask() -> str:
        async with client:
            return (await client.complete([{"role": "user", "content": "hi"}])).content

    return anyio.run(ask)


def test_the_client_keeps_the_query_and_never_shows_the_credentials() -> None:
    with ScriptedServer([Text("hi")]) as srv:
        url = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{srv.port}/v1?api_key={URL_QUERY_SECRET}"
        client = VLMClient(VLMConfig(base_url=url, api_key="sk-local-no-key", max_retries=0, timeout_s=5))
        assert _ask(client) == "hi"
        assert all(secret not in repr(client) for secret in PLANTED_SECRETS)
    assert srv.requests[0].path == f"/v1/chat/completions?api_key={URL_QUERY_SECRET}"
    assert srv.requests[0].headers["authorization"].startswith("Basic ")  # userinfo: Basic credentials


def test_an_error_echoing_the_url_and_basic_header_is_redacted() -> None:
    with ScriptedServer() as srv:
        url = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{srv.port}/v1?api_key={URL_QUERY_SECRET}"
        srv.push(Status(400, f"bad request to {url}: Authorization: {'Basic dXNlcjpwYXNz'}"))
        client = VLMClient(VLMConfig(base_url=url, api_key="sk-local-no-key", max_retries=0, timeout_s=5))
        with pytest.raises(VLMCallError) as info:
            _ask(client)
    message = str(info.value)
    assert URL_PASSWORD not in message and URL_QUERY_SECRET not in message and "dXNlcjpwYXNz" not in message
    assert "HTTP 400" in message
