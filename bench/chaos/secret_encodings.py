"""The ``URL-encoded credentials`` row: a password and a key that need percent-encoding.

``--vlm-base-url http://user:chaos%40pass%2F4417@host/v1?api_key=QK%2Bplanted%2F99key-chaos``:
the client decodes both (Basic credentials of ``chaos@pass/4417``, the query re-encoded by the
HTTP client), and a server that echoes what it got may write any form back: as typed, decoded,
re-encoded with lower-case hex or with ``/`` left alone, form-encoded, as the Basic token. Every
form must stay out of every file and out of the output; a redacted URL keeps its brackets.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from agent.trace_render import render_trace
from bench.chaos.result import RowResult, account
from bench.chaos.runs import run_offline
from bench.chaos.secrets import files_with
from bench.chaos.vlm_rows import agent_reply, agent_run
from bench.doubles.scripted_server import ScriptedServer, Status
from bench.report.markdown import print_summary
from bench.report.run_reader import load_runs

ENC_USER, ENC_PASSWORD, ENC_KEY = "chaos-user", "chaos@pass/4417", "QK+planted/99key-chaos"


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def every_form(secret: str) -> list[str]:
    """The forms a server may echo ``secret`` in: decoded, strictly encoded (upper- and
    lower-case hex), with ``/`` left alone, form-encoded."""
    strict = quote(secret, safe="")
    return list(dict.fromkeys([secret, strict, _lower_hex(strict), quote(secret), quote_plus(secret)]))


def _mixed_hex(text: str) -> str:
    """Percent-escapes in alternating case: ``%2B...%2f...%2B``."""
    count = iter(range(1_000_000))
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower() if next(count) % 2 else m[0], text)


BASIC = base64.b64encode(f"{ENC_USER}:{ENC_PASSWORD}".encode()).decode()
# Forms no list can hold in full, matched by redaction itself: escapes in any mix of cases,
# and JSON with "/" written as "\/".
ODD_FORMS = (_mixed_hex(quote(ENC_KEY, safe="")), ENC_KEY.replace("/", "\\/"))
ENCODED_SECRETS = (*every_form(ENC_PASSWORD), *every_form(ENC_KEY), *ODD_FORMS, BASIC)


def encoded_url(port: int) -> str:
    """The base URL with the password and the key percent-encoded, as a user must type them."""
    password, key = quote(ENC_PASSWORD, safe=""), quote(ENC_KEY, safe="")
    return f"http://{ENC_USER}:{password}@127.0.0.1:{port}/v1?api_key={key}"


def _echo_every_form() -> tuple[Any, dict[str, int]]:
    """Every third request: a 500 whose message holds every form, and a URL ending in ``)``."""
    served = {"n": 0, "echoed": 0}

    def policy(request: dict[str, Any]) -> Any:
        served["n"] += 1
        if served["n"] % 3:
            return agent_reply(request)
        served["echoed"] += 1
        forms = " ".join(ENCODED_SECRETS)
        return Status(500, f"upstream refused ({forms}) at (http://10.0.0.9/v1?api_key={ENC_KEY})")

    return policy, served


def encoded_credentials_row(workdir: Path, seed: int = 0) -> RowResult:
    """Percent-encoded credentials, echoed in every form: none reaches a file or the output."""
    row = RowResult("URL-encoded credentials")
    t0 = time.perf_counter()
    run_dir = workdir / "encoded-url-run"
    out, err = io.StringIO(), io.StringIO()
    policy, served = _echo_every_form()
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        url = encoded_url(srv.port)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome = run_offline(agent_run(run_dir, None, url, n=1))
            print_summary(run_dir.name, load_runs([run_dir])[0].summary)
            print(render_trace(run_dir))
        sent = srv.requests[0] if srv.requests else None
    account(row, run_dir, outcome.example_ids, outcome.exit_code)
    row.injected = served["echoed"]
    row.detected = int(row.details["summary_faults"].get("vlm_attempt_errors", 0))
    row.check(
        row.injected > 0 and row.detected == row.injected, f"{row.detected} of {row.injected} echoes counted"
    )
    auth = sent.headers.get("authorization", "") if sent else ""
    row.check(auth == f"Basic {BASIC}", "the decoded password was not sent as Basic credentials")
    row.check(sent is not None and "api_key=QK" in sent.path, "the key did not reach the server")
    text = out.getvalue() + err.getvalue()
    leaks = files_with(run_dir, [s.encode() for s in ENCODED_SECRETS])
    leaks += [f"output: {s}" for s in ENCODED_SECRETS if s in text]
    row.check(not leaks, f"credentials leaked: {'; '.join(leaks[:5])}")
    trace = (run_dir / "trace.jsonl").read_text(encoding="utf-8")
    row.check("[REDACTED]]" not in trace + text, "a redacted URL grew brackets (redaction is not idempotent)")
    row.details.update(leaks=leaks, path=sent.path if sent else None)
    row.seconds = time.perf_counter() - t0
    return row
