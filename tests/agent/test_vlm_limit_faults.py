"""The VLM limits under failures: what a failed attempt leaves in the windows, Retry-After's
pause on a call's last attempt, and the pauses between retries booked as wait."""

from __future__ import annotations

import socket
import time
from typing import Any

import anyio
import httpx2
import numpy as np
import openai
import pytest
import structlog
from helpers_fake_tools import make_registry
from helpers_vlm_calls import run_together

from agent.episode import Episode, EpisodeConfig
from agent.invoke import Invoker
from agent.vlm import VLMClient, VLMConfig
from agent.vlm_http import classify
from agent.vlm_limits import VLMLimiter, VLMLimits
from agent.vlm_reply import VLMCallError
from bench.doubles.scripted_server import Reset, ScriptedServer, Status, Text
from tools.base import Workspace
from tools.device import compute_clock
from tools.types import Image

MESSAGES = [{"role": "user", "content": "hello"}]
REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def dead_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def client_for(url: str, limits: VLMLimits, retries: int, **kw: Any) -> VLMClient:
    fast = {"backoff_base_s": 0.01, "backoff_max_s": 0.02}
    settings = {"timeout_s": 5.0, "max_retries": retries, "limits": limits, **fast, **kw}
    config = VLMConfig(base_url=url, api_key="k", **settings)
    return VLMClient(config)


def test_attempts_that_never_reached_a_dead_endpoint_leave_the_rpm_window() -> None:
    client = client_for(dead_url(), VLMLimits(rpm=1), retries=3)  # one request a minute

    async def main() -> None:
        try:
            # Four refused attempts: had each counted, attempts 2-4 would wait a minute each.
            with anyio.fail_after(30), pytest.raises(VLMCallError, match="after 4 attempt"):
                await client.complete(MESSAGES)
            with anyio.fail_after(30):  # and the window is still empty: a request goes at once
                permit = await client.limiter.acquire(1)
            await client.limiter.release(permit, None)
        finally:
            await client.aclose()

    anyio.run(main)
    assert isinstance(client.limiter, VLMLimiter) and client.limiter.requests == 5


def test_a_request_that_reached_the_endpoint_counts_whatever_the_answer() -> None:
    with ScriptedServer([Reset()]) as srv:  # the request arrived; the socket closed unanswered
        client = client_for(srv.base_url, VLMLimits(rpm=1), retries=0)
        held = []

        async def main() -> None:
            try:
                with pytest.raises(VLMCallError, match="connection error"):
                    await client.complete(MESSAGES)
                with anyio.move_on_after(0.3) as scope:  # the window holds it for a minute
                    await client.limiter.acquire(1)
                held.append(scope.cancelled_caught)
            finally:
                await client.aclose()

        anyio.run(main)
    assert held == [True] and len(srv.requests) == 1


@pytest.mark.parametrize(
    ("error", "reached"),
    [
        (openai.APIConnectionError(request=REQUEST), True),  # no cause known: assume it went
        (openai.APITimeoutError(request=REQUEST), True),
        (TimeoutError(), True),  # the whole call's deadline: the request was out
    ],
)
def test_errors_without_a_connect_cause_count_as_sent(error: Exception, reached: bool) -> None:
    assert classify(error, 5.0, str).reached is reached


@pytest.mark.parametrize(
    ("cause", "reached", "kind"),
    [
        (httpx2.ConnectError("refused"), False, "connection"),
        (httpx2.ConnectTimeout("slow connect"), False, "timeout"),
        (httpx2.PoolTimeout("no free connection"), False, "timeout"),
        (httpx2.ReadTimeout("no answer"), True, "timeout"),
        (httpx2.RemoteProtocolError("closed without a response"), True, "connection"),
        (httpx2.ReadError("reset"), True, "connection"),
    ],
)
def test_the_sdk_errors_cause_says_whether_the_request_went_out(
    cause: Exception, reached: bool, kind: str
) -> None:
    timeout = isinstance(cause, httpx2.TimeoutException)
    wrapper = openai.APITimeoutError if timeout else openai.APIConnectionError
    try:
        try:
            raise cause
        except Exception as exc:
            raise wrapper(request=REQUEST) from exc  # as the SDK wraps its HTTP client's errors
    except openai.APIConnectionError as wrapped:
        failure = classify(wrapped, 5.0, str)
    assert (failure.reached, failure.kind, failure.retryable) == (reached, kind, True)


def test_retry_after_on_the_last_attempt_still_pauses_the_others() -> None:
    with ScriptedServer([Status(429, retry_after=0.3), Text("b")]) as srv:
        client = client_for(srv.base_url, VLMLimits(max_concurrency=1), retries=0)
        outcomes: list[str] = []

        async def one() -> None:
            try:
                outcomes.append((await client.complete(MESSAGES)).content)
            except VLMCallError as exc:
                outcomes.append(f"failed: HTTP {exc.status}")

        run_together(client, one, 2)
        times = [r.t for r in srv.requests]
    assert sorted(outcomes) == ["b", "failed: HTTP 429"]  # the 429 was its call's last attempt ...
    assert times[1] - times[0] >= 0.29  # ... and still no request went during the pause it asked


def _retrying_client(srv: ScriptedServer, events: list[dict[str, Any]]) -> VLMClient:
    backoff = {"backoff_base_s": 0.3, "backoff_max_s": 0.3}
    config = VLMConfig(base_url=srv.base_url, api_key="k", max_retries=1, **backoff)
    return VLMClient(config, on_call=events.append)  # no limits: the retry's pause alone


def test_a_retrys_pause_is_booked_as_the_tool_calls_wait() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Status(500), Text("a")]) as srv:
        client = _retrying_client(srv, events)
        booked: list[float] = []

        async def main() -> Any:
            try:
                with compute_clock() as clock:  # as the invoker runs a VLM-backed tool
                    reply = await client.complete(MESSAGES)
                booked.append(clock.booked_wait)
                return reply
            finally:
                await client.aclose()

        reply = anyio.run(main)
    pause = events[0]["retry_in_s"]
    assert pause >= 0.15 and reply.content == "a"
    assert booked[0] >= pause and reply.wait_s == pytest.approx(booked[0])  # wait, not compute


def test_a_controllers_own_call_books_its_retry_pauses_as_vlm_wait() -> None:
    events: list[dict[str, Any]] = []
    with ScriptedServer([Status(503), Text("a"), Status(500), Status(500)]) as srv:
        client = _retrying_client(srv, events)
        image = Image.from_array(np.zeros((8, 8, 3), np.uint8))
        registry = make_registry()
        episode = Episode(
            Workspace(image, "x"),
            "s",
            config=EpisodeConfig(controller="oneshot"),
            invoker=Invoker(registry),
            registry=registry,
            log=structlog.get_logger(),
        )
        took: list[float] = []

        async def main() -> None:
            try:
                start = time.perf_counter()
                await episode.ask_vlm(client, MESSAGES)
                with pytest.raises(VLMCallError):  # both attempts fail: the pause is still wait
                    await episode.ask_vlm(client, MESSAGES)
                took.append(time.perf_counter() - start)
            finally:
                await client.aclose()

        anyio.run(main)
    pauses = sum(e["retry_in_s"] or 0.0 for e in events)
    vlm = episode.costs.tools["vlm"]
    assert (vlm.calls, vlm.errors) == (2, 1)
    assert vlm.wait_seconds >= pauses >= 0.3 and vlm.vlm_wait_seconds == vlm.wait_seconds
    assert vlm.seconds <= took[0] - pauses  # the pauses are not in the calls' seconds
