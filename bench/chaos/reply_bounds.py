"""The ``huge and deep replies`` row: replies no parser should take whole.

A ``ground`` run whose VLM answers, on schedule, 600,000 braces (the old ``\\{.*\\}`` search
blocked the event loop for minutes, past any ``--episode-timeout``), a box nested 3,000 levels
deep (a ``RecursionError`` that failed the example) and a response body nested 5,000 levels
deep; then an ``agent`` run whose tool calls carry arguments nested 3,000 levels deep in 6 KB.
Each must cost a bounded moment: the ground examples fall back with a reason that names the
limit, well inside the episode's deadline; the agent's bad calls go back to the model as
errors and the episodes finish.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline
from bench.chaos.vlm_rows import PROPOSER, VLM_TIMEOUT_S, agent_reply, agent_run
from bench.doubles.scripted_server import Call, Raw, ScriptedServer, Spec, Text, ToolCalls, completion_json

BRACES = 600_000
DEEP_ANSWER, DEEP_BODY = 3_000, 5_000
EPISODE_TIMEOUT_S = 30.0
PER_FAULT = 3  # requests served each fault
NOT_FOUND = '{"box": null}'


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_body(_request: dict[str, Any]) -> Raw:
    text = json.dumps(completion_json(Text(NOT_FOUND)))[:-1] + ', "extra": ' + nested(DEEP_BODY) + "}"
    return Raw(200, text, {"content-type": "application/json"})


GROUND_FAULTS: tuple[Callable[[dict[str, Any]], Spec], ...] = (
    lambda _r: Text("{" * BRACES),
    lambda _r: Text('{"box": ' + nested(DEEP_ANSWER) + "}"),
    _deep_body,
)


def _deep_arguments(_request: dict[str, Any]) -> ToolCalls:
    return ToolCalls((Call(PROPOSER, '{"x": ' + nested(DEEP_ANSWER) + "}"),))


class _FirstRequests:
    """A server policy: the first requests get the faults (``PER_FAULT`` each, in order), the
    rest ``good``."""

    def __init__(self, faults: tuple[Callable[[dict[str, Any]], Spec], ...], good: Callable[..., Spec]):
        self.schedule = [f for f in faults for _ in range(PER_FAULT)]
        self.good, self.served = good, 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Spec:
        with self._lock:
            fault = self.schedule[self.served] if self.served < len(self.schedule) else None
            self.served += fault is not None
        return fault(request) if fault is not None else self.good(request)


def _ground_part(row: RowResult, workdir: Path) -> None:
    run_dir = workdir / "deep-ground-run"
    policy = _FirstRequests(GROUND_FAULTS, lambda _r: Text(NOT_FOUND))
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        run = OfflineRun(
            run_dir,
            None,
            n=1,
            episode={
                "controller": "ground",
                "tau_conf": 1.0,
                "tau_gap": 1.0,
                "episode_timeout_s": EPISODE_TIMEOUT_S,
            },
            vlm={
                "base_url": srv.base_url,
                "model": "chaos-vlm",
                "timeout_s": VLM_TIMEOUT_S,
                "max_retries": 0,
            },
        )
        outcome = run_offline(run)
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    limits = ("characters long", "levels deep")
    named = [
        r
        for r in recs
        if r["stop_reason"] == "fallback" and any(s in (r.get("fallback_reason") or "") for s in limits)
    ]
    row.injected += policy.served
    row.detected += len(named)
    kinds = sorted({str(r.get("fallback_kind")) for r in named})
    row.check(set(kinds) <= {"oversized", "malformed"}, f"replies over a limit counted as {kinds}")
    row.details["fallback_kinds"] = kinds
    slowest = max((float(r.get("seconds") or 0.0) for r in recs), default=0.0)
    row.check(
        slowest < EPISODE_TIMEOUT_S,
        f"a ground episode took {slowest:.1f} s (deadline {EPISODE_TIMEOUT_S:g} s)",
    )
    row.details.update(slowest_episode_s=slowest, episode_timeout_s=EPISODE_TIMEOUT_S)


def _agent_part(row: RowResult, workdir: Path) -> None:
    run_dir = workdir / "deep-agent-run"
    policy = _FirstRequests((_deep_arguments,), agent_reply)
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        outcome = run_offline(agent_run(run_dir, None, srv.base_url, n=1))
    sub = RowResult("agent")
    recs = account(sub, run_dir, outcome.example_ids, outcome.exit_code)
    row.lost, row.duplicated = row.lost + sub.lost, row.duplicated + sub.duplicated
    row.examples, row.failed = row.examples + sub.examples, row.failed + sub.failed
    row.problems += [f"agent: {p}" for p in sub.problems]
    rejected = int(sub.details["summary_faults"].get("rejected_tool_calls", 0))
    row.injected += policy.served
    row.detected += rejected
    row.check(all(r["stop_reason"] == "agent_submit" for r in recs), "an agent episode did not finish")


def deep_replies_row(workdir: Path, seed: int = 0) -> RowResult:
    """600,000 braces, deep answers, deep bodies, deep tool arguments: bounded, and said so."""
    row = RowResult("huge and deep replies")
    t0 = time.perf_counter()
    _ground_part(row, workdir)
    _agent_part(row, workdir)
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} huge or deep replies named")
    row.seconds = time.perf_counter() - t0
    return row
