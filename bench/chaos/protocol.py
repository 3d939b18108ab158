"""The protocol-variants row: what OpenAI-compatible servers really send, and a killed run.

- tool-call ``arguments`` sent as a JSON object instead of a string: accepted as is;
- a 200 reply whose body is an HTML page: the error says it is not an OpenAI-compatible JSON
  reply (``text/html``), is not retried, and the episode falls back;
- an invocation that dies in the middle (as a kill leaves it: nothing written after):
  ``invocations.jsonl`` shows its start without an end, and the summary counts it as killed
  (SIGKILLed children are the ``SIGKILL + resume`` row's).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline
from bench.chaos.vlm_rows import agent_reply, agent_run
from bench.doubles.scripted_server import Raw, ScriptedServer, Spec, completion_json
from bench.samples import TRACE, WriteHook

HTML = "<!doctype html><html><body><h1>Sign in</h1></body></html>"
NOT_JSON = "not an OpenAI-compatible JSON reply (text/html)"


def with_object_arguments(request: dict[str, Any], n: int) -> Raw:
    """The good reply, its tool calls' ``arguments`` as JSON objects (not strings)."""
    body = completion_json(agent_reply(request), n)
    for call in body["choices"][0]["message"]["tool_calls"]:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return Raw(200, body)


class _Variants:
    """Every other request: arguments as objects; every seventh: an HTML page."""

    def __init__(self) -> None:
        self.served = {"objects": 0, "html": 0}
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Spec:
        with self._lock:
            self.n += 1
            n = self.n
            kind = "html" if n % 7 == 3 else "objects" if n % 2 else None
            if kind:
                self.served[kind] += 1
        if kind == "html":
            return Raw(200, HTML, {"Content-Type": "text/html; charset=utf-8"})
        return with_object_arguments(request, n) if kind else agent_reply(request)


def _html_errors(run_dir: Path) -> int:
    count = 0
    for raw in (run_dir / TRACE).read_bytes().splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        count += event.get("event") == "vlm_call" and NOT_JSON in str(event.get("error"))
    return count


class _Killed(Exception):
    """Ends an invocation where it stands: like a kill, it writes nothing more."""


def _die_at(line: int) -> WriteHook:
    def hook(number: int, _data: bytes, _fh: object) -> None:
        if number == line:
            raise _Killed

    return hook


def _killed_invocation(workdir: Path) -> dict[str, Any]:
    """A one-shot run that dies before its third line (no end line), then resumed."""
    run = OfflineRun(workdir / "killed-run", None, n=1, episode={"controller": "oneshot"})
    with contextlib.suppress(_Killed):
        run_offline(run, before_write=_die_at(3))
    return run_offline(run).summary


def protocol_row(workdir: Path, seed: int = 0) -> RowResult:
    """Object arguments accepted, HTML replies named, a killed invocation recorded."""
    row = RowResult("protocol variants")
    t0 = time.perf_counter()
    run_dir = workdir / "protocol-run"
    policy = _Variants()
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        outcome = run_offline(agent_run(run_dir, None, srv.base_url, n=1))
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    faults = row.details["summary_faults"]
    html = _html_errors(run_dir)
    resumed = _killed_invocation(workdir)
    killed = int(resumed["timing"]["killed_invocations"])
    row.check(resumed["counts"]["missing"] == 0, "the killed run did not resume to every example")
    row.injected = policy.served["objects"] + policy.served["html"] + 1
    accepted = policy.served["objects"] if faults.get("rejected_tool_calls") == 0 else 0
    row.detected = accepted + html + killed
    row.check(faults.get("rejected_tool_calls") == 0, f"{faults.get('rejected_tool_calls')} calls rejected")
    row.check(html == policy.served["html"] > 0, f"{html} of {policy.served['html']} HTML replies named")
    row.check(row.fallback >= html, f"{row.fallback} fallbacks for {html} HTML replies (not retried)")
    row.check(killed == 1, f"the summary counts {killed} killed invocation(s), not 1")
    row.check(any(r["stop_reason"] == "agent_submit" for r in recs), "no object-argument submit accepted")
    row.details.update(served=dict(policy.served))
    row.seconds = time.perf_counter() - t0
    return row
