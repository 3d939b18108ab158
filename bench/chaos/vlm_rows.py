"""The VLM fault rows: an agent run against a scripted server that misbehaves on schedule.

Each row is an ``--controller agent`` run of 34 examples at concurrency 8 against
:class:`bench.doubles.scripted_server.ScriptedServer`, whose policy answers like a well-behaved agent
(:func:`agent_reply`) except where the row's fault function injects a fault.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline
from bench.doubles.scripted_server import (
    Call,
    EmptyChoices,
    Reset,
    ScriptedServer,
    Slow,
    Spec,
    Status,
    Text,
    ToolCalls,
    Truncated,
)

PROPOSER, RANKER, SUBMIT = "region_propose", "attribute_rank", "submit"
VLM_TIMEOUT_S = 5.0  # roomy: on a busy 2-core machine a 1 s limit times out healthy replies
SLOW_TIMEOUT_S = 1.0  # the "slow reply" row's own limit, so each slow reply costs a second
SLOW_REPLY_S = 2.5
VLM_MAX_RETRIES = 2


def agent_reply(request: dict[str, Any]) -> ToolCalls:
    """A well-behaved agent: propose, rank, then submit the ranker's top candidate.

    Stateless: the next step is read from the conversation the client sent, so it holds
    however requests of concurrent episodes interleave.
    """
    names: dict[str, str] = {}
    proposed = ranked = False
    top = 0
    for msg in request.get("messages", []):
        for call in msg.get("tool_calls") or []:
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
        if msg.get("role") != "tool":
            continue
        try:
            content = json.loads(msg.get("content") or "{}")
        except ValueError:
            continue
        if not isinstance(content, dict) or "error" in content:
            continue
        name = names.get(msg.get("tool_call_id", ""), "")
        if name == PROPOSER:
            proposed, ranked = True, False
        elif name == RANKER and content.get("top"):
            ranked, top = True, int(content["top"][0]["index"])
    if not proposed:
        return ToolCalls.of((PROPOSER, {}))
    if not ranked:
        return ToolCalls.of((RANKER, {}))
    return ToolCalls.of((SUBMIT, {"index": top, "reason": "the ranker's top candidate"}))


FaultFn = Callable[[int, ToolCalls], Spec | None]


class FaultPolicy:
    """Server policy: request ``n`` gets ``fault(n, good_reply)``, or the good reply when None."""

    def __init__(self, fault: FaultFn):
        self.fault = fault
        self.requests = 0
        self.injected = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Spec:
        good = agent_reply(request)
        with self._lock:
            self.requests += 1
            n = self.requests
        spec = self.fault(n, good)
        if spec is None:
            return good
        with self._lock:
            self.injected += 1
        return spec


def _every(k: int, spec: Callable[[int, ToolCalls], Spec]) -> FaultFn:
    return lambda n, good: spec(n, good) if n % k == 0 else None


def _odd_finish(n: int, good: ToolCalls) -> Spec:
    if n % 4 == 0:  # no tool call at all, for a reason the client does not know
        return Text("", finish_reason="content_filter")
    return ToolCalls(good.calls, finish_reason="length")  # a usable call, odd reason


@dataclass(frozen=True)
class VLMFault:
    """A VLM row: the fault, which summary counter must see it, and how exactly.

    Attributes:
        episode, vlm: the row's own episode settings and VLM settings (over the defaults).
    """

    name: str
    fault: FaultFn
    counter: Callable[[dict[str, Any]], int]
    exact: bool = True  # the counter must equal the injected count (else: at least it)
    episode: dict[str, Any] = field(default_factory=dict)
    vlm: dict[str, Any] = field(default_factory=dict)


def _status(code: str) -> Callable[[dict[str, Any]], int]:
    return lambda f: int(f.get("vlm_errors_by_status", {}).get(code, 0))


def _no_status(f: dict[str, Any]) -> int:
    return int(f.get("vlm_errors_by_status", {}).get("none", 0))


VLM_FAULTS: tuple[VLMFault, ...] = (
    VLMFault(
        "429 + Retry-After",
        _every(3, lambda n, g: Status(429, "slow down", retry_after=0.05)),
        _status("429"),
    ),
    VLMFault("500 bursts", lambda n, g: Status(500, "overloaded") if n % 30 < 10 else None, _status("500")),
    VLMFault("connection reset", _every(4, lambda n, g: Reset()), _no_status, exact=False),
    VLMFault(
        "reply slower than timeout",
        _every(5, lambda n, g: Slow(SLOW_REPLY_S, g)),
        _no_status,
        exact=False,
        vlm={"timeout_s": SLOW_TIMEOUT_S},
    ),
    VLMFault(
        "truncated JSON body",
        _every(3, lambda n, g: Truncated(g, keep=0.5, short_read=n % 2 == 0)),
        _no_status,
        exact=False,
    ),
    VLMFault(
        "malformed tool arguments",
        _every(3, lambda n, g: ToolCalls((Call(g.calls[0].name, '{"query": "the red'),))),
        lambda f: int(f.get("rejected_tool_calls", 0)),
    ),
    VLMFault(
        "unknown tool name",
        _every(3, lambda n, g: ToolCalls.of(("frobnicate", {"x": 1}))),
        lambda f: int(f.get("rejected_tool_calls", 0)),
    ),
    VLMFault(
        "endless tool calls",
        lambda n, g: ToolCalls.of((PROPOSER, {})),
        lambda f: int(f.get("_turn_limit_stops", 0)),
        exact=False,
        episode={"controller_options": {"agent": {"max_turns": 4}}},
    ),
    VLMFault("empty choices", _every(3, lambda n, g: EmptyChoices()), _no_status, exact=False),
    VLMFault(
        "wrong finish_reason",
        _every(2, _odd_finish),
        lambda f: int(f.get("odd_finish_reasons", 0)),
    ),
)


def agent_run(
    run_dir: Path, cache_dir: Path | None, base_url: str, *, n: int = 2, **episode: Any
) -> OfflineRun:
    """An agent run against ``base_url`` whose guards never pass (every episode asks the VLM)."""
    return OfflineRun(
        run_dir,
        cache_dir,
        n=n,
        episode={"controller": "agent", "tau_conf": 1.0, "tau_gap": 1.0, **episode},
        vlm={
            "base_url": base_url,
            "model": "chaos-vlm",
            "timeout_s": VLM_TIMEOUT_S,
            "max_retries": VLM_MAX_RETRIES,
        },
    )


def vlm_row(fault: VLMFault, workdir: Path, *, n_scenes: int = 2) -> RowResult:
    """One VLM fault in an agent run (``n_scenes`` 2 = 34 examples) at concurrency 8."""
    row = RowResult(fault.name)
    t0 = time.perf_counter()
    slug = "".join(c if c.isalnum() else "-" for c in fault.name.lower())
    run_dir = workdir / f"vlm-{slug}"
    policy = FaultPolicy(fault.fault)
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        run = agent_run(run_dir, workdir / f"cache-{slug}", srv.base_url, n=n_scenes, **fault.episode)
        outcome = run_offline(dataclasses.replace(run, vlm={**run.vlm, **fault.vlm}))
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    faults = dict(row.details["summary_faults"])
    faults["_turn_limit_stops"] = row.details["stop_reasons"].get("max_iter", 0)
    row.injected = policy.injected
    row.detected = fault.counter(faults)
    row.check(row.injected > 0, "nothing was injected")
    if fault.exact:
        row.check(row.detected == row.injected, f"summary counted {row.detected} of {row.injected} faults")
    else:
        row.check(row.detected >= min(row.injected, 1), f"summary counted {row.detected} faults")
    # Where the VLM failed for good, the episode must say so: stop reason "fallback".
    vlm_failed = [r for r in recs if (r.get("costs", {}).get("vlm") or {}).get("errors")]
    row.check(
        all(r["stop_reason"] == "fallback" for r in vlm_failed),
        "an example whose VLM call failed did not stop with 'fallback'",
    )
    row.details["vlm_failed_examples"] = len(vlm_failed)
    row.details["requests"] = policy.requests
    row.seconds = time.perf_counter() - t0
    return row
