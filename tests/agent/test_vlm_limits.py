"""VLM limits that follow the endpoint: requests in flight, per minute, tokens per minute."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers_vlm_calls import run_together

from agent.vlm import VLMClient, VLMConfig
from agent.vlm_limits import REPLY_TOKENS, SlidingWindow, VLMLimiter, VLMLimits, estimate_tokens
from bench.doubles.fixed_latency import LatencyEndpoint
from bench.doubles.scripted_server import ScriptedServer, Status, Text
from bench.options import BenchOptions, DataSpec, RunOptions, VLMOptions
from bench.runner import run_bench_sync
from tests.bench.helpers_runner import offline_options
from tools.errors import ConfigError

MESSAGES = [{"role": "user", "content": "hello"}]


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of ``times`` inside any half-open window ``[t, t + window)``."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times)), default=0)


def test_a_minute_of_greedy_requests_holds_every_window_to_rpm() -> None:
    window = SlidingWindow(limit=60, window_s=60.0)
    now, sent = 0.0, []
    while now < 180.0:  # three minutes of a client that sends as soon as it may
        now += window.wait(now, 1)
        window.settle(window.add(1), now + 0.5)  # its reply came half a second later
        sent.append(now)
    assert most_in_any_window(sent, 60.0) == 60
    assert sum(1 for t in sent if t < 60.0) == 60  # the first minute: 60, not a bucket's 120
    assert len(sent) == pytest.approx(3 * 60, abs=60)


def test_tokens_reserve_an_estimate_then_count_what_the_reply_used() -> None:
    window = SlidingWindow(limit=1000, window_s=60.0)
    entry = window.add(800)  # the estimate, sent at 0
    assert window.wait(1.0, 400) == float("inf")  # 800 + 400 > 1000, and its reply is not back yet
    window.settle(entry, 2.0, 300)  # the reply came at 2 s and reported 300 tokens
    assert window.wait(3.0, 400) == 0.0
    assert window.wait(3.0, 5000) == pytest.approx(59.0)  # more than the limit: alone, in an empty window
    assert window.wait(62.0, 5000) == 0.0


def test_estimate_counts_text_and_images() -> None:
    messages = [
        {"role": "system", "content": "x" * 400},
        {
            "role": "user",
            "content": [{"type": "text", "text": "y" * 40}, {"type": "image_url", "image_url": {}}],
        },
    ]
    assert estimate_tokens(messages, max_tokens=50) == 110 + 1000 + 50
    assert estimate_tokens(messages) == 110 + 1000 + REPLY_TOKENS  # no max_tokens: 256 reserved
    tools = [{"type": "function", "function": {"name": "rank", "parameters": {"type": "object"}}}]
    schemas = len('[{"type":"function","function":{"name":"rank","parameters":{"type":"object"}}}]') // 4
    assert estimate_tokens(messages, 50, tools) == (400 + 40 + 4 * schemas) // 4 + 1000 + 50


def test_a_request_reserves_its_tool_schemas_and_reply_in_the_tpm_window() -> None:
    seen: list[int] = []

    class Recording(VLMLimiter):
        async def acquire(self, tokens: int = 0) -> Any:
            seen.append(tokens)
            return await super().acquire(tokens)

    tools = [{"type": "function", "function": {"name": "x" * 400, "parameters": {}}}]
    with ScriptedServer([Text("a")]) as srv:
        limiter = Recording(VLMLimits(tpm=10_000))
        client = VLMClient(VLMConfig(base_url=srv.base_url, api_key="k"), limiter=limiter)

        async def main() -> None:
            try:
                await client.complete(MESSAGES, tools=tools, tools_optional=True)
            finally:
                await client.aclose()

        anyio.run(main)
    assert seen == [estimate_tokens(MESSAGES, None, [tools])] and seen[0] > 100 + REPLY_TOKENS


def test_bad_limits_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="--vlm-rpm must be at least 1"):
        VLMOptions(rpm=0)
    with pytest.raises(ConfigError, match="--vlm-max-concurrency must be at least 1"):
        VLMLimits(max_concurrency=-2)
    assert not VLMLimits().enabled and VLMLimits().limiter() is None


@pytest.mark.slow
def test_the_limiter_holds_concurrency_and_a_short_window_in_real_time() -> None:
    limiter = VLMLimiter(VLMLimits(max_concurrency=2, rpm=4, window_s=0.4))
    sent: list[float] = []
    in_flight = [0, 0]

    async def request() -> None:
        permit = await limiter.acquire(10)
        sent.append(time.monotonic())
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await anyio.sleep(0.05)
        in_flight[0] -= 1
        await limiter.release(permit, 10)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(request)

    anyio.run(main)
    assert in_flight[1] == 2
    assert most_in_any_window(sent, 0.4 - 0.02) <= 4  # 20 ms for the clock's granularity
    assert sent[-1] - sent[0] >= 0.8  # 10 requests at 4 per 0.4 s: at least two more windows
    assert limiter.requests == 10 and limiter.waited_s > 0


def test_retry_after_still_holds_and_pauses_the_other_requests() -> None:
    with ScriptedServer([Status(429, retry_after=0.3), Text("a"), Text("b")]) as srv:
        limits = VLMLimits(max_concurrency=1)
        config = VLMConfig(base_url=srv.base_url, api_key="k", timeout_s=5.0, max_retries=2, limits=limits)
        client = VLMClient(config)
        replies: list[Any] = []

        async def one() -> None:
            replies.append(await client.complete(MESSAGES))

        run_together(client, one, 2)
        times = [r.t for r in srv.requests]
    assert sorted(r.content for r in replies) == ["a", "b"]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.29 and times[2] - times[0] >= 0.29  # nobody went during the pause
    assert sum(r.wait_s for r in replies) > 0  # the one behind the slot and the pause waited


def _ground_run(tmp_path: Path, endpoint: LatencyEndpoint, **run: Any) -> Any:
    vlm = VLMOptions(base_url=endpoint.base_url, max_concurrency=8)
    episode = offline_options(None, {"controller": "ground", "tau_conf": 1.0, "tau_gap": 1.0}, vlm=vlm)
    data = DataSpec(dataset="synthetic", n=4)
    options = RunOptions(concurrency=64, bootstrap=0, quiet=True, max_fallback_rate=1.0, **run)
    return run_bench_sync(BenchOptions(out=tmp_path / "run", episode=episode, data=data, run=options))


@pytest.mark.slow
def test_max_concurrency_holds_the_endpoint_with_64_examples_in_flight(tmp_path: Path) -> None:
    with LatencyEndpoint(0.15) as endpoint:  # a child process: it counts what arrives
        result = _ground_run(tmp_path, endpoint)
        seen = endpoint.stats()
    assert result.ran >= 64 and result.failed == 0
    assert seen["requests"] == result.ran  # one ground request per example ...
    assert seen["max_in_flight"] == 8  # ... never more than 8 at the endpoint
    vlm = result.summary.costs.tools["vlm"]
    assert vlm.wait_seconds > 0.5  # most requests waited for a slot: booked as wait ...
    assert vlm.seconds < result.ran * 0.15 * 2  # ... not as the calls' seconds
    assert result.summary.timing.event_loop.samples > 0


@pytest.mark.slow
def test_max_concurrency_holds_for_the_whole_ray_cluster(tmp_path: Path) -> None:
    from bench.options import EngineOptions

    with LatencyEndpoint(0.15) as endpoint:
        result = _ground_run(tmp_path, endpoint, engine=EngineOptions(name="ray", workers=2))
        seen = endpoint.stats()
    assert result.ran >= 64 and result.failed == 0
    assert result.summary.timing.workers == 2
    assert seen["requests"] == result.ran and seen["max_in_flight"] == 8


@pytest.mark.slow
def test_rpm_holds_a_real_endpoint_in_real_time() -> None:
    with LatencyEndpoint(0.0, in_process=True) as endpoint:
        limits = VLMLimits(rpm=3, window_s=0.5)
        client = VLMClient(VLMConfig(base_url=endpoint.base_url, api_key="k", limits=limits))

        run_together(client, lambda: client.complete(MESSAGES), 8)
        arrivals = endpoint.stats()["arrivals"]
    assert len(arrivals) == 8
    assert most_in_any_window(arrivals, 0.5 - 0.03) <= 3
    assert arrivals[-1] - arrivals[0] >= 0.9  # 8 at 3 per 0.5 s: two more windows at least


@pytest.mark.slow
def test_a_vlm_backed_tool_books_the_limits_wait_as_wait(tmp_path: Path) -> None:
    with LatencyEndpoint(0.05, in_process=True) as endpoint:
        vlm = VLMOptions(base_url=endpoint.base_url, max_concurrency=1)
        episode = offline_options(
            None, {"controller": "loop", "tau_conf": 1.0, "tau_gap": 1.0, "max_iter": 1}, vlm=vlm
        )
        episode = dataclasses.replace(episode, models=dataclasses.replace(episode.models, refiner="vlm"))
        data = DataSpec(dataset="synthetic", n=1)
        run = RunOptions(concurrency=8, bootstrap=0, quiet=True, max_fallback_rate=1.0)
        result = run_bench_sync(BenchOptions(out=tmp_path / "run", episode=episode, data=data, run=run))
    refine = result.summary.costs.tools["refine_query"]
    assert refine.computed == result.ran and refine.wait_seconds > 0.1  # 8 episodes, 1 request at a time
    assert refine.seconds < refine.computed * 0.05 * 3  # compute: about one request's latency each
