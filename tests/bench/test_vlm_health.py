"""VLM health is part of the result: a rejected key stops the run, fallbacks say why and are
bounded by --max-fallback-rate, prices and the flags that asked for a VLM are named."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.doubles.scripted_server import ScriptedServer, Status, Text

PLANTED_KEY = "sk-planted-health-key-0123456789"
RUN = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--quiet"]
VLM_LOOP = [*RUN, "--controller", "loop", "--refiner", "vlm", "--bootstrap", "0"]


def lines(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_a_rejected_key_stops_the_run_at_once_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.vlm  # noqa: F401 - the SDK's import (seconds on a busy machine) is not the run

    monkeypatch.setenv("REFSEG_VLM_API_KEY", PLANTED_KEY)
    with ScriptedServer(policy=lambda _r: Status(401, f"Incorrect API key provided: {PLANTED_KEY}")) as srv:
        host = srv.base_url.split("//", 1)[1].split("/", 1)[0]
        t0 = time.monotonic()
        code = main(
            [*VLM_LOOP, "--tau-conf", "0.999", "--vlm-base-url", srv.base_url, "--out", str(tmp_path / "r")]
        )
        seconds = time.monotonic() - t0
        asked = len(srv.requests)
    err = capsys.readouterr().err.strip()
    assert code == 6 and seconds < 5
    assert err.splitlines() == [err] and err.startswith(f"refseg: error: VLM at {host} answered HTTP 401: ")
    assert "REFSEG_VLM_API_KEY" in err and PLANTED_KEY not in err
    assert asked <= 8  # the examples in flight, not one per example: the run stopped


@pytest.mark.slow
def test_fallbacks_say_why_and_fail_the_run_past_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    server: dict[str, Any] = {"reply": Status(500, "overloaded")}
    srv = ScriptedServer(policy=lambda _r: server["reply"]).start()
    args = [*VLM_LOOP, "--vlm-base-url", srv.base_url, "--vlm-max-retries", "0", "--out", str(out)]
    assert main(args) == 5
    captured = capsys.readouterr()
    recs = lines(out)
    needed = [r for r in recs if r["needed_vlm"]]
    # "Needed the VLM": the episode asked it (a refine call); guard-settled ones did not.
    assert needed == [r for r in recs if "refine_query" in r["costs"]] and 0 < len(needed) < len(recs)
    for r in needed:
        assert r["stop_reason"] == "fallback" and r["fallback_kind"] == "http_500"
        assert "HTTP 500" in str(r["fallback_reason"]) and not r["failed"]
    assert all(r["fallback_reason"] is None for r in recs if not r["needed_vlm"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vlm"] == {
        "needed": len(needed),
        "fallbacks": len(needed),
        "fallback_rate": 1.0,
        "by_kind": {"http_500": len(needed)},
    }
    assert f"VLM: {len(needed)} needed it, {len(needed)} fell back (http_500 {len(needed)})" in captured.out
    assert f"vlm_attempt_errors {len(needed)}" in captured.out and "(HTTP status: 500 " in captured.out
    (err,) = [line for line in captured.err.splitlines() if line.startswith("refseg: error:")]
    assert f"{len(needed)} of {len(needed)} examples that needed the VLM fell back (100.0% >" in err
    assert "--max-fallback-rate 0.05" in err
    report = (out / "report.md").read_text()
    assert "## VLM health and faults" in report and f"http_500 {len(needed)}" in report
    # The same results with a looser limit: the run resumes (nothing to do) and passes.
    assert main([*args, "--max-fallback-rate", "1"]) == 0
    # Once the endpoint works again, --retry-failed redoes the examples that fell back.
    server["reply"] = Text('{"query": "the red circle"}')
    try:
        assert main([*args, "--retry-failed"]) == 0
    finally:
        srv.stop()
    redone = json.loads((out / "summary.json").read_text())["vlm"]
    assert redone["needed"] == len(needed) and redone["fallbacks"] == 0


@pytest.mark.slow
def test_an_unknown_model_price_is_one_line_and_the_flags_set_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = Text('{"query": "the red circle"}', prompt_tokens=1000, completion_tokens=100)
    with ScriptedServer(policy=lambda _r: reply) as srv:
        base = [*VLM_LOOP, "--tau-conf", "0.999", "--no-cache", "--vlm-base-url", srv.base_url]
        base += ["--vlm-model", "local-vlm"]
        assert main([*base, "--out", str(tmp_path / "a")]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "no price" in line]
        assert notes == [
            "note: no price for VLM model 'local-vlm': its USD cost counts as 0; set it with "
            "--vlm-price-in and --vlm-price-out (USD per million input / output tokens)"
        ]
        priced = [*base, "--vlm-price-in", "2", "--vlm-price-out", "10", "--out", str(tmp_path / "b")]
        assert main(priced) == 0
        assert "no price" not in capsys.readouterr().err
    total = json.loads((tmp_path / "b" / "summary.json").read_text())["costs"]["total"]
    assert total["usd"] == pytest.approx((2 * total["tokens_in"] + 10 * total["tokens_out"]) / 1e6)
    assert total["usd"] > 0
    assert main([*base, "--vlm-price-in", "2", "--out", str(tmp_path / "c")]) == 2
    assert "give both --vlm-price-in and --vlm-price-out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--refiner", "vlm"], "--refiner vlm needs a VLM"),
        (["--tool-option", "refine_query.refiner=vlm"], "--tool-option refine_query.refiner=vlm needs a VLM"),
        (["--controller", "agent"], "--controller agent needs a VLM"),
    ],
)
def test_a_vlm_run_without_a_vlm_names_the_flag_given(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = ["bench", "suite", *RUN[2:], "--experiments", "main"]
    for command in (RUN, suite):
        assert main([*command, *flags, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        if command is suite and "--controller" in flags:
            named = "bench suite sets --controller per sub-run"  # it would not run the agent
        assert err.startswith(f"refseg: error: {named}") and len(err.splitlines()) == 1
