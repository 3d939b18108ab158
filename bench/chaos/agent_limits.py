"""The agent-limit rows: a VLM that asks for unbounded work, and one that sends huge content.

- ``unbounded VLM work``: replies with 400 tool calls, and replies slower than the
  episode's deadline. At most ``max_calls_per_reply`` calls of a reply and
  ``max_tool_calls`` of an episode may run; an episode past its deadline falls back.
- ``huge tool args and names``: tool calls with megabytes of arguments or a megabyte-long
  name. The trace stays small (every logged string is cut, with a marker giving its length)
  and the next request does not carry the content back to the model.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult, account
from bench.chaos.runs import run_offline
from bench.chaos.vlm_rows import PROPOSER, agent_reply, agent_run
from bench.doubles.scripted_server import Call, ScriptedServer, Slow, Spec, ToolCalls
from bench.samples import TRACE

BURST_CALLS = 400
MAX_TOOL_CALLS, MAX_CALLS_PER_REPLY = 12, 4
EPISODE_TIMEOUT_S, SLOW_REPLY_S = 3.0, 8.0  # the VLM timeout (5 s) is between them
ARGS_CHARS, NAME_CHARS = 4 * 2**20, 2 * 2**20
MAX_TRACE_BYTES, MAX_REQUEST_BYTES = 2 * 2**20, 256 * 2**10


def _events(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for raw in (run_dir / TRACE).read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


class _Scheduled:
    """A server policy: request ``n`` gets ``faults[n]`` when listed, else the good reply."""

    def __init__(self, faults: dict[int, Any]):
        self.faults = faults
        self.served: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Spec:
        with self._lock:
            self.requests += 1
            kind, spec = self.faults.get(self.requests, (None, None))
            if kind is not None:
                self.served[kind] += 1
        return spec(request) if spec is not None else agent_reply(request)


def _burst(_request: dict[str, Any]) -> ToolCalls:
    return ToolCalls(tuple(Call(PROPOSER, {}) for _ in range(BURST_CALLS)))


def unbounded_work_row(workdir: Path, seed: int = 0) -> RowResult:
    """400-call replies and replies slower than the episode deadline: bounded, and said so."""
    row = RowResult("unbounded VLM work")
    t0 = time.perf_counter()
    run_dir = workdir / "limits-run"
    faults: dict[int, Any] = {n: ("burst", _burst) for n in (1, 4, 9, 15)}
    faults.update({n: ("slow", lambda r: Slow(SLOW_REPLY_S, agent_reply(r))) for n in (2, 7, 12)})
    policy = _Scheduled(faults)
    limits = {
        "controller_options": {
            "agent": {"max_tool_calls": MAX_TOOL_CALLS, "max_calls_per_reply": MAX_CALLS_PER_REPLY}
        },
        "episode_timeout_s": EPISODE_TIMEOUT_S,
    }
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        outcome = run_offline(agent_run(run_dir, None, srv.base_url, n=1, **limits))
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    faults_seen = row.details["summary_faults"]
    events = _events(run_dir)
    limit_events = [e for e in events if e.get("event") == "tool_call_limit"]
    timeouts = {e["sample_id"] for e in events if e.get("event") == "episode_timeout"}
    row.injected = policy.served["burst"] + policy.served["slow"]
    row.detected = len(limit_events) + len(timeouts)
    # At least: on a busy machine an ordinary episode may pass the deadline too (and fall back).
    row.check(row.detected >= row.injected, f"{row.detected} of {row.injected} limits hit and traced")
    row.check(
        faults_seen.get("episode_timeouts") == len(timeouts) >= policy.served["slow"],
        f"summary counted {faults_seen.get('episode_timeouts')} timeouts of {policy.served['slow']}",
    )
    refused = sum(int(e.get("refused") or 0) for e in limit_events)
    row.check(
        len(limit_events) >= 1 and refused == faults_seen.get("refused_tool_calls"), "refusals uncounted"
    )
    by_sample = Counter(
        e["sample_id"] for e in events if e.get("event") == "tool_call" and not e.get("rejected")
    )
    most = max(by_sample.values(), default=0)
    row.check(most <= MAX_TOOL_CALLS + 4, f"an episode ran {most} tool calls (cap {MAX_TOOL_CALLS})")
    timed_out = [r for r in recs if r["example_id"] in timeouts]
    row.check(all(r["stop_reason"] == "fallback" for r in timed_out), "a timed-out episode did not fall back")
    slowest = max((r["seconds"] for r in timed_out), default=0.0)
    row.check(slowest < EPISODE_TIMEOUT_S + 3.0, f"a timed-out episode took {slowest:.1f} s")
    row.details.update(most_tool_calls=most, slowest_timed_out_s=slowest, served=dict(policy.served))
    row.seconds = time.perf_counter() - t0
    return row


def _huge_args(request: dict[str, Any]) -> ToolCalls:
    return ToolCalls((Call(PROPOSER, json.dumps({"x": "A" * ARGS_CHARS})),))


def _huge_name(request: dict[str, Any]) -> ToolCalls:
    return ToolCalls.of(("N" * NAME_CHARS, {}))


def huge_content_row(workdir: Path, seed: int = 0) -> RowResult:
    """Megabytes of tool arguments or tool name: a small trace, small requests afterwards."""
    row = RowResult("huge tool args and names")
    t0 = time.perf_counter()
    run_dir = workdir / "huge-run"
    faults = {n: ("args", _huge_args) for n in (1, 5)} | {n: ("name", _huge_name) for n in (3, 8)}
    policy = _Scheduled(faults)
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        outcome = run_offline(agent_run(run_dir, None, srv.base_url, n=1))
        largest = max(len(r.body) for r in srv.requests)
    account(row, run_dir, outcome.example_ids, outcome.exit_code)
    trace_bytes = (run_dir / TRACE).stat().st_size
    rejected = [e for e in _events(run_dir) if e.get("event") == "tool_call" and e.get("rejected")]
    marked = [e for e in rejected if "[truncated: " in json.dumps(e)]
    row.injected = sum(policy.served.values())
    row.detected = len(marked)
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} huge calls traced cut")
    row.check(trace_bytes < MAX_TRACE_BYTES, f"trace.jsonl is {trace_bytes} bytes")
    row.check(largest < MAX_REQUEST_BYTES, f"a request carried {largest} bytes back to the model")
    row.details.update(trace_bytes=trace_bytes, largest_request_bytes=largest)
    row.seconds = time.perf_counter() - t0
    return row
