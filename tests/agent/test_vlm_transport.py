"""The VLM request through the client's post: what the endpoint answers, read as the SDK reads it."""

from __future__ import annotations

import anyio
import pytest

from agent.vlm import VLMClient, VLMConfig
from agent.vlm_reply import VLMCallError
from bench.doubles.scripted_server import Raw, ScriptedServer, Text

MESSAGES = [{"role": "user", "content": "hi"}]


def complete(client: VLMClient, **kw: object) -> object:
    async def go() -> object:
        try:
            return await client.complete(MESSAGES, **kw)
        finally:
            await client.aclose()

    return anyio.run(go)


def test_the_request_is_the_sdk_s_and_the_reply_reads_the_same() -> None:
    with ScriptedServer([Text("hello", prompt_tokens=7, completion_tokens=3)]) as srv:
        client = VLMClient(VLMConfig(base_url=srv.base_url + "?api_key=q1", api_key="k", max_retries=0))
        reply = complete(client, temperature=0.0, max_tokens=5)
        sent = srv.requests[0]
    assert reply.content == "hello" and (reply.tokens_in, reply.tokens_out) == (7, 3)  # type: ignore[attr-defined]
    assert sent.path.startswith("/v1/chat/completions?api_key=q1")
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.json == {"model": client.model, "messages": MESSAGES, "temperature": 0.0, "max_tokens": 5}


def test_json_that_is_not_a_completion_is_malformed_and_a_web_page_is_not_json() -> None:
    with ScriptedServer(
        [Raw(200, "[1, 2]"), Raw(200, "<html></html>", {"Content-Type": "text/html"})]
    ) as srv:
        client = VLMClient(VLMConfig(base_url=srv.base_url, api_key="k", max_retries=0))
        with pytest.raises(VLMCallError) as first:
            complete(client)
        with pytest.raises(VLMCallError) as second:
            complete(client)
    assert first.value.kind == "malformed" and "not a chat completion" in str(first.value)
    assert second.value.kind == "not_json"


def test_the_sdk_client_is_made_at_set_up_in_a_thread() -> None:
    client = VLMClient(VLMConfig(base_url="http://127.0.0.1:9/v1", api_key="k"))

    async def main() -> bool:
        await client.prepare()
        made = len(client._clients) == 1
        await client.aclose()
        return made

    assert anyio.run(main)
