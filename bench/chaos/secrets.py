"""The secrets rows: a planted key, and credentials inside the base URL, that the server
echoes back must appear in no file and no output.

Every scorecard row is also scanned for :data:`PLANTED_SECRETS` afterwards (the table's
``secrets`` column): a secret planted by one row must not surface in any row's files.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.episode import EpisodeConfig
from agent.trace_render import render_trace
from bench.chaos.result import RowResult, account, read_json
from bench.chaos.runs import run_offline
from bench.chaos.vlm_rows import agent_reply, agent_run
from bench.doubles.scripted_server import ScriptedServer, Status
from bench.options import CacheOptions, EpisodeOptions, ModelOptions, SegmentOptions, VLMOptions
from bench.report.markdown import print_summary, print_table, write_report
from bench.report.run_reader import load_runs
from bench.segment import segment_images
from bench.summary import trace_faults

PLANTED_KEY = "sk-chaos-planted-0123456789abcdef"
URL_USER, URL_PASSWORD, URL_QUERY_SECRET = "chaos-user", "chaos-url-pass-5821", "chaos-query-secret-3309"
BASIC_TOKEN = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
PLANTED_SECRETS = (PLANTED_KEY, URL_PASSWORD, URL_QUERY_SECRET, BASIC_TOKEN)


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


def secret_files(root: Path) -> list[str]:
    """``path: secret`` for each file under ``root`` holding a planted secret."""
    return files_with(root, [secret.encode() for secret in PLANTED_SECRETS]) if root.exists() else []


def _echo_credentials(url: str) -> Any:
    """Every third request: a 500 whose message repeats the URL and the Basic credentials."""
    served = {"n": 0, "echoed": 0}

    def policy(request: dict[str, Any]) -> Any:
        served["n"] += 1
        if served["n"] % 3:
            return agent_reply(request)
        served["echoed"] += 1
        return Status(500, f"upstream {url}/chat/completions refused Authorization: Basic {BASIC_TOKEN}")

    return policy, served


def _segment_with(url: str, workdir: Path) -> Path:
    """``refseg segment`` (the library call) of one generated scene with the agent at ``url``."""
    from PIL import Image as PILImage

    from tools.offline.scenes import generate_scene

    scene = generate_scene(3)
    image = workdir / "scene.png"
    PILImage.fromarray(np.asarray(scene.image, dtype=np.uint8)).save(image)
    out = workdir / "segment"
    episode = EpisodeOptions(
        models=ModelOptions(toolset="offline"),
        episode=EpisodeConfig(controller="agent", tau_conf=1.0, tau_gap=1.0),
        vlm=VLMOptions(base_url=url, model="chaos-vlm", timeout_s=5.0, max_retries=1, backoff_max_s=0.05),
        cache=CacheOptions(enabled=False),
    )
    segment_images(SegmentOptions((image,), scene.objects[0].expressions[0], out, episode))
    return out


def credentials_url_row(workdir: Path, seed: int = 0) -> RowResult:
    """``--vlm-base-url http://user:pass@host/v1?api_key=SECRET``: requests reach
    ``/v1/chat/completions?api_key=SECRET``; a server echoing the URL and the Basic header leaks
    nothing into the run folder, ``result.json``, the trace, the summary or the trace view."""
    row = RowResult("credentials in base URL")
    t0 = time.perf_counter()
    run_dir = workdir / "url-run"
    out, err = io.StringIO(), io.StringIO()
    with ScriptedServer(max_requests=100_000, max_lifetime_s=600) as srv:
        url = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{srv.port}/v1?api_key={URL_QUERY_SECRET}"
        srv.policy, served = _echo_credentials(url)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome = run_offline(agent_run(run_dir, None, url, n=1))
            in_bench = served["echoed"]
            print_summary(run_dir.name, load_runs([run_dir])[0].summary)  # the report: the secrets row's
            print(render_trace(run_dir))
            segment = _segment_with(url, workdir)
            print(render_trace(segment))
        paths = {r.path for r in srv.requests}
    account(row, run_dir, outcome.example_ids, outcome.exit_code)
    row.injected = served["echoed"]
    row.detected = int(row.details["summary_faults"].get("vlm_attempt_errors", 0))
    row.detected += int(trace_faults(segment / "trace.jsonl")["vlm_attempt_errors"])
    want = f"/v1/chat/completions?api_key={URL_QUERY_SECRET}"
    row.check(paths == {want}, f"requests went to {sorted(paths)[:3]}, not {want}")
    row.check(in_bench > 0 and row.injected > in_bench, "the bench run or the segment run got no echo")
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} echoed errors counted")
    result = read_json(segment / "result.json")
    row.check(result.get("config", {}).get("vlm") is not None, "result.json does not describe the VLM")
    leaks = secret_files(run_dir) + secret_files(segment)
    leaks += [f"{name}: {secret}" for name, text in (("stdout", out), ("stderr", err))
              for secret in PLANTED_SECRETS if secret in text.getvalue()]  # fmt: skip
    row.check(not leaks, f"credentials leaked: {'; '.join(leaks[:5])}")
    row.details.update(leaks=leaks, paths=sorted(paths), output_chars=len(out.getvalue()))
    row.seconds = time.perf_counter() - t0
    return row
