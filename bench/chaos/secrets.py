"""The planted-key row: a key the server echoes back must appear in no file and no output."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any

from agent.trace_view import render_trace
from bench.chaos.result import RowResult, account
from bench.chaos.runs import run_offline
from bench.chaos.server import ScriptedServer, Status
from bench.chaos.vlm_rows import agent_reply, agent_run
from bench.report import load_runs, print_summary, print_table, write_report

PLANTED_KEY = "sk-chaos-planted-0123456789abcdef"


def files_with(root: Path, needles: list[bytes]) -> list[str]:
    """``path: needle`` for every file under ``root`` holding one of ``needles``."""
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p.relative_to(root)}: {n.decode()}" for n in needles if n in data]
    return hits


def show_run(run_dir: Path) -> None:
    """What a user shows others: the summary, the report (markdown, figures), the trace view."""
    runs = load_runs([run_dir])
    print_summary(run_dir.name, runs[0].summary)
    write_report(run_dir, runs, title="refseg bench report")
    print_table(runs)
    print(render_trace(run_dir))


def secrets_row(workdir: Path, seed: int = 0) -> RowResult:
    """A planted key, echoed back by the server in its errors, must appear in no file or output."""
    row = RowResult("planted API key")
    t0 = time.perf_counter()
    key = PLANTED_KEY
    echoes = [
        # 400, not 401: a 401 (key rejected) stops the whole run by design (VLMAuthError).
        Status(400, f"Bad request for API key: {key}"),
        Status(500, f"upstream said: Authorization: Bearer {key}"),
        Status(429, f"rate limited for key {key}", retry_after=0.01),
    ]
    served = {"n": 0}

    def policy(request: dict[str, Any]) -> Any:
        served["n"] += 1
        return echoes[served["n"] % 3] if served["n"] % 2 == 0 else agent_reply(request)

    run_dir, cache = workdir / "secret-run", workdir / "secret-cache"
    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY")}
    os.environ["SILICONFLOW_API_KEY"] = key  # must not be sent to this (non-SiliconFlow) host ...
    os.environ["REFSEG_VLM_API_KEY"] = key  # ... this one is, and must still never be written
    try:
        with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
            run = agent_run(run_dir, cache, srv.base_url, n=1)
            run = dataclasses.replace(run, vlm={**run.vlm, "timeout_s": 2.0, "max_retries": 1})
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                outcome = run_offline(run)
                show_run(run_dir)
            sent = [r.headers.get("authorization", "") for r in srv.requests]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    account(row, run_dir, outcome.example_ids, outcome.exit_code)
    needles = [key.encode(), b"Bearer"]
    leaks = files_with(run_dir, needles) + files_with(cache, needles)
    leaks += [f"{name}: {n.decode()}" for name, text in (("stdout", out), ("stderr", err))
              for n in needles if n.decode() in text.getvalue()]  # fmt: skip
    row.injected = served["n"] // 2
    row.detected = int(row.details["summary_faults"].get("vlm_attempt_errors", 0))
    row.check(any(key in s for s in sent), "the key never reached the server (nothing was tested)")
    row.check(not leaks, f"key leaked: {'; '.join(leaks[:5])}")
    row.details["leaks"] = leaks
    row.details["output_chars"] = len(out.getvalue()) + len(err.getvalue())
    row.seconds = time.perf_counter() - t0
    return row
