"""VLMClient against a local OpenAI-compatible server over real HTTP (real ``openai`` SDK)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (until conftest does it)

from agent.vlm import (
    DEFAULT_MODEL,
    Price,
    VLMCallError,
    VLMClient,
    VLMConfig,
)
from bench.doubles.scripted_server import (
    Call,
    EmptyChoices,
    Reset,
    ScriptedServer,
    Slow,
    Status,
    Text,
    ToolCalls,
    Truncated,
    endless_tool_calls,
)
from tools.errors import ConfigError, VLMAuthError, VLMError

SECRET = "sk-test-SECRET-123"
MESSAGES = [{"role": "user", "content": "hello"}]


def make_client(srv: ScriptedServer, events: list[dict[str, Any]] | None = None, **cfg: Any) -> VLMClient:
    settings: dict[str, Any] = {
        "timeout_s": 1.0,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    settings.update(cfg)
    config = VLMConfig(base_url=srv.base_url, model=DEFAULT_MODEL, api_key=SECRET, **settings)
    return VLMClient(config, on_call=events.append if events is not None else None)


def run(client: VLMClient, *args: Any, **kw: Any) -> Any:
    async def go() -> Any:
        try:
            return await client.complete(*args, **kw)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_text_reply_parsed_with_tokens_usd_and_auth_header() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Text("a dog", prompt_tokens=1000, completion_tokens=500)]) as srv:
        client = make_client(srv, events)
        reply = run(client, MESSAGES, temperature=0.1)
    assert reply.content == "a dog"
    assert reply.finish_reason == "stop"
    assert (reply.tokens_in, reply.tokens_out, reply.attempts) == (1000, 500, 1)
    assert reply.usd == pytest.approx((1000 * 0.59 + 500 * 0.59) / 1e6)
    assert reply.tool_calls == ()
    assert client.calls == 1 and client.tokens_in == 1000 and client.tokens_out == 500
    assert client.usd == pytest.approx(reply.usd)
    (req,) = srv.requests
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert req.json is not None and req.json["model"] == DEFAULT_MODEL
    assert req.json["temperature"] == 0.1 and req.json["messages"] == MESSAGES
    assert req.headers["x-stainless-retry-count"] == "0"  # the SDK does not retry on its own
    (event,) = events
    assert event["status"] == 200 and event["error"] is None and event["tokens_in"] == 1000


def test_429_retry_after_is_honoured() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Status(429, retry_after=0.2), Text("ok")]) as srv:
        client = make_client(srv, events, backoff_max_s=0.01)
        t0 = time.monotonic()
        reply = run(client, MESSAGES)
        elapsed = time.monotonic() - t0
    assert reply.content == "ok" and reply.attempts == 2
    assert len(srv.requests) == 2
    assert srv.requests[1].t - srv.requests[0].t >= 0.2
    assert elapsed >= 0.2
    assert events[0]["status"] == 429 and events[0]["retry_in_s"] == 0.2
    assert "HTTP 429" in events[0]["error"]


def test_retry_after_ms_and_cap() -> None:
    with ScriptedServer([Status(429, headers={"retry-after-ms": "150"}), Text("ok")]) as srv:
        events: list[dict[str, Any]] = []
        run(make_client(srv, events), MESSAGES)
    assert events[0]["retry_in_s"] == 0.15
    with ScriptedServer([Status(503, retry_after=100), Text("ok")]) as srv:
        events = []
        t0 = time.monotonic()
        run(make_client(srv, events, retry_after_max_s=0.05), MESSAGES)
    assert events[0]["retry_in_s"] == 0.05 and time.monotonic() - t0 < 2


def test_500_then_success() -> None:
    with ScriptedServer([Status(500), Text("fine")]) as srv:
        reply = run(make_client(srv), MESSAGES)
    assert reply.content == "fine" and reply.attempts == 2 and len(srv.requests) == 2


def test_timeout_then_success() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Slow(3.0), Text("in time")]) as srv:
        client = make_client(srv, events, timeout_s=0.3)
        t0 = time.monotonic()
        reply = run(client, MESSAGES)
        elapsed = time.monotonic() - t0
    assert reply.content == "in time" and reply.attempts == 2
    assert 0.3 <= elapsed < 2.0
    assert "timed out" in events[0]["error"] and events[0]["status"] is None


def test_connection_reset_is_retried() -> None:
    with ScriptedServer([Reset(), Text("after reset")]) as srv:
        reply = run(make_client(srv), MESSAGES)
    assert reply.content == "after reset" and reply.attempts == 2 and len(srv.requests) == 2


@pytest.mark.parametrize("fault", [Truncated(), Truncated(short_read=True), EmptyChoices()])
def test_malformed_responses_are_retried(fault: Any) -> None:
    with ScriptedServer([fault, Text("good")]) as srv:
        reply = run(make_client(srv), MESSAGES)
    assert reply.content == "good" and reply.attempts == 2


def test_retries_exhausted_raise_one_line_vlm_error() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Status(500, "boom")] * 3) as srv:
        client = make_client(srv, events, max_retries=2)
        with pytest.raises(VLMCallError) as info:
            run(client, MESSAGES)
    err = info.value
    assert isinstance(err, VLMError)
    assert len(srv.requests) == 3 and err.attempts == 3 and err.status == 500 and err.retryable
    assert "\n" not in str(err) and "3 attempt" in str(err) and "HTTP 500" in str(err)
    assert [e["attempt"] for e in events] == [1, 2, 3]
    assert events[-1]["retry_in_s"] is None
    assert client.failures == 1 and client.calls == 0


def test_empty_choices_exhausted() -> None:
    with ScriptedServer([EmptyChoices()] * 2) as srv, pytest.raises(VLMCallError, match="no choices"):
        run(make_client(srv, max_retries=1), MESSAGES)


def test_non_retryable_4xx_fails_at_once_and_secret_never_leaks() -> None:
    events: list[dict[str, Any]] = []
    # A server that echoes the key in its error body must not leak it through us.
    with ScriptedServer([Status(400, f"Invalid request with key {SECRET}"), Text("never")]) as srv:
        client = make_client(srv, events)
        with pytest.raises(VLMCallError) as info:
            run(client, MESSAGES)
    assert len(srv.requests) == 1 and info.value.status == 400 and not info.value.retryable
    assert "HTTP 400" in str(info.value) and info.value.kind == "http_400"
    texts = [str(info.value), repr(info.value), json.dumps(events), repr(client), repr(client.config)]
    assert all(SECRET not in t for t in texts)
    assert "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_secret_cut_by_the_one_line_limit_still_never_leaks() -> None:
    # Find where the body lands in the one-line detail, then pad the body so the key
    # straddles the 300-character cut: even its first characters must not get through.
    with ScriptedServer([Status(422, "MARK")]) as srv, pytest.raises(VLMCallError) as probe:
        run(make_client(srv), MESSAGES)
    detail = str(probe.value).split("HTTP 422: ", 1)[1]
    pad = "x" * (300 - 3 - 10 - detail.index("MARK"))  # unredacted, 10 key characters fit
    with ScriptedServer([Status(422, pad + SECRET)]) as srv, pytest.raises(VLMCallError) as info:
        run(make_client(srv), MESSAGES)
    assert SECRET[:8] not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (401, f"Invalid API key {SECRET}", "the API key was rejected; set REFSEG_VLM_API_KEY"),
        (403, "forbidden", "has no access to model"),
        (404, "The model `nope` does not exist", "no model"),
        (400, "Model does not exist. Please check it carefully.", "pass --vlm-model"),
    ],
)
def test_a_rejected_key_or_unknown_model_is_a_run_level_error(status: int, body: str, says: str) -> None:
    with ScriptedServer([Status(status, body), Text("never")]) as srv:
        with pytest.raises(VLMAuthError) as info:
            run(make_client(srv), MESSAGES)
        host = srv.base_url.split("//", 1)[1].split("/", 1)[0]
    text = str(info.value)
    assert len(srv.requests) == 1 and not isinstance(info.value, VLMError)  # no retry, no fallback
    assert text.startswith(f"VLM at {host} answered HTTP {status}: ") and says in text
    assert SECRET not in text and "\n" not in text and info.value.exit_code == 6


def test_secret_absent_from_retry_events_and_config_repr() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Reset(), Slow(2.0), Status(429, retry_after=0), Text("ok")]) as srv:
        run(make_client(srv, events, timeout_s=0.3), MESSAGES)
    assert len(events) == 4 and all(SECRET not in json.dumps(e) for e in events)
    config = VLMConfig(api_key=SECRET)
    assert SECRET not in repr(config) and SECRET not in str(config) and "'***'" in repr(config)


def test_tool_calls_several_malformed_unknown_and_odd_finish_reason() -> None:
    tools = [{"type": "function", "function": {"name": "rank", "parameters": {"type": "object"}}}]
    spec = ToolCalls.of(
        ("rank", {"query": "red car"}),
        Call("no_such_tool", '{"x": 1}', id="call_x"),
        ("rank", '{"query": "unterminated'),
        finish_reason="weird_reason",
    )
    events: list[dict[str, Any]] = []
    with ScriptedServer([spec]) as srv:
        reply = run(make_client(srv, events), MESSAGES, tools=tools, tool_choice="auto")
    assert reply.finish_reason == "weird_reason" and reply.content == ""
    assert [c.name for c in reply.tool_calls] == ["rank", "no_such_tool", "rank"]
    assert reply.tool_calls[0].parse_arguments() == {"query": "red car"}
    assert reply.tool_calls[1].id == "call_x"
    assert reply.tool_calls[2].arguments == '{"query": "unterminated'
    with pytest.raises(ValueError, match="not valid JSON"):
        reply.tool_calls[2].parse_arguments()
    assert srv.requests[0].json is not None
    assert srv.requests[0].json["tools"] == tools and srv.requests[0].json["tool_choice"] == "auto"
    assert events[0]["tool_calls"] == ["rank", "no_such_tool", "rank"]
    msg = reply.assistant_message()
    assert msg["role"] == "assistant" and msg["tool_calls"][1]["function"]["name"] == "no_such_tool"


def test_unknown_model_costs_zero_with_note() -> None:
    with ScriptedServer([Text("x", prompt_tokens=10, completion_tokens=10)]) as srv:
        config = VLMConfig(base_url=srv.base_url, model="mystery-vlm", api_key=SECRET)
        client = VLMClient(config)
        reply = run(client, MESSAGES)
    assert reply.usd == 0.0 and client.usd == 0.0
    assert client.price_note is not None and "mystery-vlm" in client.price_note
    with ScriptedServer([Text("x", prompt_tokens=2_000_000, completion_tokens=1_000_000)]) as srv:
        config = VLMConfig(base_url=srv.base_url, model="m2", api_key=SECRET, prices={"m2": Price(1.0, 3.0)})
        assert run(VLMClient(config), MESSAGES).usd == pytest.approx(5.0)


def test_from_env_key_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY", "REFSEG_VLM_BASE_URL", "REFSEG_VLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    off = VLMConfig.from_env()
    reason = off.vlm_unavailable_reason()
    assert reason is not None and "\n" not in reason
    assert "SILICONFLOW_API_KEY" in reason and "REFSEG_VLM_API_KEY" in reason and "--vlm-base-url" in reason
    with pytest.raises(VLMError):
        VLMClient(off)

    local = VLMConfig.from_env(base_url="http://127.0.0.1:9/v1/")
    assert local.vlm_unavailable_reason() is None and local.api_key
    assert local.base_url == "http://127.0.0.1:9/v1" and local.model == DEFAULT_MODEL

    monkeypatch.setenv("REFSEG_VLM_API_KEY", "from-refseg")
    assert VLMConfig.from_env().api_key == "from-refseg"
    monkeypatch.setenv("SILICONFLOW_API_KEY", "from-siliconflow")
    cfg = VLMConfig.from_env(model="other", timeout_s=5)
    assert cfg.api_key == "from-siliconflow" and cfg.model == "other" and cfg.timeout_s == 5
    assert cfg.base_url == "https://api.siliconflow.cn/v1"
    assert VLMConfig.from_env(api_key="explicit").api_key == "explicit"
    with pytest.raises(ConfigError, match="http"):
        VLMConfig.from_env(base_url="localhost:8000/v1")
    with pytest.raises(ConfigError, match="max_retries"):
        VLMConfig(max_retries=-1)


def test_server_policy_is_bounded_and_unscripted_requests_are_counted() -> None:
    with ScriptedServer(policy=endless_tool_calls("rank", {"query": "again"}), max_requests=3) as srv:
        client = make_client(srv, max_retries=0)

        async def go() -> list[Any]:
            async with client:
                out: list[Any] = [await client.complete(MESSAGES) for _ in range(3)]
                try:
                    await client.complete(MESSAGES)
                except VLMCallError as exc:
                    out.append(exc)
                return out

        replies = asyncio.run(go())
    assert [r.tool_calls[0].name for r in replies[:3]] == ["rank"] * 3
    assert isinstance(replies[3], VLMCallError) and "max_requests" in str(replies[3])
    with ScriptedServer() as srv, pytest.raises(VLMCallError, match="no reply scripted"):
        run(make_client(srv, max_retries=0), MESSAGES)
    assert srv.unscripted == 1


def test_siliconflow_key_only_goes_to_siliconflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.vlm import VLMConfig

    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-siliconflow-only-123")
    assert VLMConfig.from_env().api_key == "sk-siliconflow-only-123"  # the default endpoint
    other = VLMConfig.from_env(base_url="https://api.example.com/v1")
    assert other.api_key != "sk-siliconflow-only-123" and other.vlm_unavailable_reason() is None
    monkeypatch.setenv("REFSEG_VLM_API_KEY", "sk-generic-456")
    assert VLMConfig.from_env(base_url="https://api.example.com/v1").api_key == "sk-generic-456"
    assert VLMConfig.from_env(base_url="https://api.siliconflow.cn/v1").api_key == "sk-siliconflow-only-123"
