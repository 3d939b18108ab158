"""``python -m bench.chaos`` / ``refseg bench chaos``: the fault-injection scorecard.

Runs real bench runs offline (generated scenes, the offline toolset, no weights) and
injects one fault per row:

- VLM faults, each in an ``--controller agent`` run of at least 20 examples at
  ``--concurrency 8`` against a scripted local OpenAI-compatible server
  (:mod:`bench.chaos_server`): 429 with ``Retry-After``, 500 bursts, connection resets,
  replies slower than the timeout, truncated JSON bodies, malformed tool arguments, unknown
  tool names, endless tool calls, empty choices and odd ``finish_reason`` values;
- kill and resume: ``refseg bench run`` subprocesses SIGKILLed at random points, some in the
  middle of writing a result line (the ``REFSEG_FAULT_KILL_AT_LINE`` hook of
  :mod:`bench.samples`), then resumed; metrics must equal an uninterrupted run's;
- a corpus of bad inputs (:mod:`bench.chaos_inputs`);
- a planted API key that the server echoes back in its errors (no file may show it);
- a cache whose every entry is corrupted between two runs (checksums catch it), one entry
  replaced by a pickle (never loaded);
- two ``refseg bench run`` processes sharing one cache folder (results of a lone process).

A row *survived* when every example was recorded exactly once with a stop reason, the run's
summary counted the injected faults and the exit code matched the failures. The command
prints the table and exits 1 when any row lost or duplicated an example or did not survive.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos_server import (
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
from bench.samples import SAMPLES

PROPOSER, RANKER, SUBMIT = "region_propose", "attribute_rank", "submit"
STOP_REASONS = frozenset({"guard", "max_iter", "agent_submit", "fallback", "error", "oneshot"})
VLM_TIMEOUT_S = 5.0  # roomy: on a busy 2-core machine a 1 s limit times out healthy replies
SLOW_TIMEOUT_S = 1.0  # the "slow reply" row's own limit, so each slow reply costs a second
SLOW_REPLY_S = 2.5
VLM_MAX_RETRIES = 2
BACKOFF_S = (0.01, 0.05)  # base and cap: faults are retried at once, runs stay short


# --------------------------------------------------------------------------- results


@dataclass
class RowResult:
    """One scorecard row: what was injected and what the run folder shows afterwards.

    Attributes:
        fault: the row's name.
        injected: faults injected (bad replies served, kills, bad inputs, ...).
        detected: how many of them the run's own summary (or logs) counted.
        examples: examples the run should hold.
        lost: examples with no record.
        duplicated: examples with more than one record.
        fallback: examples that stopped with ``fallback``.
        failed: examples recorded as failed (with a reason).
        exit_code: the run's exit code (last invocation).
        seconds: wall time of the row.
        problems: every check that did not hold (empty when the row survived).
        run_dir: the run folder, for tests that look deeper.
        details: row-specific extras (summary faults, stop reasons, ...).
    """

    fault: str
    injected: int = 0
    detected: int = 0
    examples: int = 0
    lost: int = 0
    duplicated: int = 0
    fallback: int = 0
    failed: int = 0
    exit_code: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def record_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every parseable line of ``samples.jsonl`` (duplicates kept: they are what we count)."""
    path = run_dir / SAMPLES
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("example_id"), str):
            out.append(rec)
    return out


def account(
    row: RowResult, run_dir: Path, expected_ids: Sequence[str], exit_code: int
) -> list[dict[str, Any]]:
    """Fill lost / duplicated / failed / fallback from the run folder; check the basics."""
    lines = record_lines(run_dir)
    counts = Counter(r["example_id"] for r in lines)
    expected = set(expected_ids)
    row.run_dir = run_dir
    row.examples = len(expected)
    row.lost = len(expected - set(counts))
    row.duplicated = sum(1 for eid, n in counts.items() if n > 1)
    row.exit_code = exit_code
    last = {r["example_id"]: r for r in lines}
    recs = [last[e] for e in expected_ids if e in last]
    row.failed = sum(1 for r in recs if r.get("failed"))
    row.fallback = sum(1 for r in recs if r.get("stop_reason") == "fallback")
    stray = set(counts) - expected
    row.check(not stray, f"{len(stray)} record(s) of unknown examples")
    bad_stop = [r["example_id"] for r in recs if r.get("stop_reason") not in STOP_REASONS]
    row.check(not bad_stop, f"{len(bad_stop)} record(s) without a known stop reason")
    no_reason = [r["example_id"] for r in recs if r.get("failed") and not r.get("error")]
    row.check(not no_reason, f"{len(no_reason)} failed record(s) without an error")
    want_exit = 1 if (row.failed or row.lost) else 0
    row.check(exit_code == want_exit, f"exit code {exit_code}, expected {want_exit}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    counted = summary["counts"]
    row.check(
        counted["examples"] == len(recs) and counted["failed"] == row.failed,
        f"summary counts {counted} disagree with samples.jsonl",
    )
    row.details["summary_faults"] = summary.get("faults", {})
    row.details["stop_reasons"] = summary.get("stop_reasons", {})
    return recs


# --------------------------------------------------------------------------- runs


def bench_args(run_dir: Path, cache_dir: Path | None, *extra: str, n: int = 2) -> list[str]:
    """``refseg bench run`` arguments for a quick offline run (generated scenes)."""
    cache = ["--cache-dir", str(cache_dir)] if cache_dir is not None else ["--no-cache"]
    return [
        "bench", "run", "--dataset", "synthetic", "--n", str(n), "--toolset", "offline",
        "--out", str(run_dir), *cache, "--quiet", "--bootstrap", "0", "--concurrency", "8", *extra,
    ]  # fmt: skip


def run_in_process(argv: Sequence[str], *, fast_backoff: bool = True) -> tuple[int, list[str], int]:
    """Parse ``refseg`` arguments and run the bench as ``refseg bench run`` does.

    The VLM client gets a short backoff (not a command-line option), so retries do not
    dominate the scorecard's time. Returns ``(exit code, example ids, damaged cache entries
    found)``.
    """
    from bench.bench_cli import data_spec, run_options
    from bench.cli import build_parser
    from bench.options import build_runtime
    from bench.runner import run_bench_sync

    args = build_parser().parse_args(list(argv))
    spec = data_spec(args, args.perturb)
    examples = spec.load()
    rt = build_runtime(args)
    if rt.vlm is not None and fast_backoff:
        rt.vlm.config = rt.vlm.config.with_(backoff_base_s=BACKOFF_S[0], backoff_max_s=BACKOFF_S[1])
    try:
        result = run_bench_sync(rt, examples, args.out, spec, run_options(args, quiet=True))
        corrupt = rt.cache.corrupt if rt.cache is not None else 0
    finally:
        rt.close()
    return result.exit_code, [ex.example_id for ex in examples], corrupt


# --------------------------------------------------------------------------- VLM faults


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
    """A VLM row: the fault, which summary counter must see it, and how exactly."""

    name: str
    fault: FaultFn
    counter: Callable[[dict[str, Any]], int]
    exact: bool = True  # the counter must equal the injected count (else: at least it)
    extra: tuple[str, ...] = ()


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
        extra=("--vlm-timeout", str(SLOW_TIMEOUT_S)),
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
        extra=("--max-turns", "4"),
    ),
    VLMFault("empty choices", _every(3, lambda n, g: EmptyChoices()), _no_status, exact=False),
    VLMFault(
        "wrong finish_reason",
        _every(2, _odd_finish),
        lambda f: int(f.get("odd_finish_reasons", 0)),
    ),
)


def vlm_row(fault: VLMFault, workdir: Path, *, n_scenes: int = 2) -> RowResult:
    """One VLM fault in an agent run (``n_scenes`` 2 = 34 examples) at concurrency 8."""
    row = RowResult(fault.name)
    t0 = time.perf_counter()
    slug = "".join(c if c.isalnum() else "-" for c in fault.name.lower())
    run_dir = workdir / f"vlm-{slug}"
    policy = FaultPolicy(fault.fault)
    with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
        argv = bench_args(
            run_dir, workdir / f"cache-{slug}", "--controller", "agent", "--vlm-base-url", srv.base_url,
            "--vlm-model", "chaos-vlm", "--vlm-timeout", str(VLM_TIMEOUT_S),
            "--vlm-max-retries", str(VLM_MAX_RETRIES), "--tau-conf", "1.0", "--tau-gap", "1.0",
            *fault.extra, n=n_scenes,
        )  # fmt: skip
        code, ids, _ = run_in_process(argv)
    recs = account(row, run_dir, ids, code)
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


# --------------------------------------------------------------------------- table, CLI


COLUMNS = (
    ("fault", 27), ("injected", 8), ("detected", 8), ("survived", 8), ("examples", 8),
    ("lost", 4), ("duplicated", 10), ("fallback", 8), ("failed", 6), ("exit", 4), ("s", 5),
)  # fmt: skip


def format_table(rows: Sequence[RowResult]) -> str:
    """The scorecard as a fixed-width text table (problems listed under it)."""
    head = " | ".join(name.ljust(w) for name, w in COLUMNS)
    lines = [head, "-+-".join("-" * w for _, w in COLUMNS)]
    for r in rows:
        cells = (
            r.fault, r.injected, r.detected, "yes" if r.survived else "NO", r.examples, r.lost,
            r.duplicated, r.fallback, r.failed, r.exit_code, f"{r.seconds:.1f}",
        )  # fmt: skip
        lines.append(" | ".join(str(c).ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    for r in rows:
        for p in r.problems:
            lines.append(f"  ! {r.fault}: {p}")
    return "\n".join(lines)


def scorecard_exit_code(rows: Sequence[RowResult]) -> int:
    """0 when every row survived with nothing lost or duplicated, else 1."""
    return 0 if rows and all(r.survived for r in rows) else 1


def row_names() -> list[str]:
    from bench.chaos_inputs import EXTRA_ROWS

    return [f.name for f in VLM_FAULTS] + list(EXTRA_ROWS)


def run_row(name: str, workdir: Path, *, seed: int = 0) -> RowResult:
    """Run one scorecard row by name (see :func:`row_names`) in ``workdir``."""
    from bench.chaos_inputs import EXTRA_ROWS

    workdir.mkdir(parents=True, exist_ok=True)
    for fault in VLM_FAULTS:
        if fault.name == name:
            return vlm_row(fault, workdir)
    if name in EXTRA_ROWS:
        return EXTRA_ROWS[name](workdir, seed)
    raise KeyError(f"unknown scorecard row {name!r}; rows: {', '.join(row_names())}")


def run_scorecard(
    workdir: Path,
    names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
) -> list[RowResult]:
    """Run the rows (all by default) one after another; a row that crashes is a failed row."""
    rows = []
    for name in names or row_names():
        t0 = time.perf_counter()
        try:
            row = run_row(name, workdir, seed=seed)
        except Exception as exc:  # the scorecard reports a crashed row instead of dying
            row = RowResult(name, problems=[f"crashed: {type(exc).__name__}: {exc}"])
            row.seconds = time.perf_counter() - t0
        rows.append(row)
        if echo is not None:
            echo(f"{name}: {'survived' if row.survived else 'NOT survived'} ({row.seconds:.1f} s)")
    return rows


def add_chaos_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rows", nargs="+", default=None, metavar="ROW", help="only these rows (names as printed)"
    )
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")


def cmd_chaos(args: argparse.Namespace) -> int:
    """Run the scorecard, print the table; exit 1 when any row lost, duplicated or failed."""
    import logging

    logging.getLogger("agent.vlm").setLevel(logging.ERROR)  # "no price for model" is noise here
    if args.list:
        print("\n".join(row_names()))
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="refseg-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        rows = run_scorecard(workdir, args.rows, seed=args.seed, echo=lambda s: print(s, file=sys.stderr))
    print(format_table(rows))
    code = scorecard_exit_code(rows)
    print(
        f"{len(rows)} row(s), {sum(r.survived for r in rows)} survived, "
        f"{sum(r.lost for r in rows)} lost, {sum(r.duplicated for r in rows)} duplicated; "
        f"{time.perf_counter() - t0:.1f} s"
    )
    if args.json is not None:
        data = [
            {k: v for k, v in {**r.__dict__, "survived": r.survived}.items() if k not in ("run_dir",)}
            for r in rows
        ]
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return code


def add_chaos_parser(subparsers: Any) -> None:
    """Register ``refseg bench chaos`` (call after ``add_bench_parsers(subparsers)``).

    Args:
        subparsers: the ``refseg`` top-level subparsers holding the ``bench`` command.
    """
    from bench.bench_cli import bench_subparsers

    p = bench_subparsers(subparsers).add_parser(
        "chaos",
        help="fault-injection scorecard (offline, a few minutes)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_chaos_options(p)
    p.set_defaults(func=cmd_chaos)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description="fault-injection scorecard")
    add_chaos_options(parser)
    return cmd_chaos(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
