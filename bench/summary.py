"""``summary.json`` of a run (:class:`bench.records.Summary`): the protocol's metrics, counts,
stop reasons, VLM health, costs and timing, from its files.

``n_images`` and ``n_expressions`` say what the numbers are over (``--n`` counts images; each
image has one or more expressions). Costs are per tool and in total, spent now and cold (what
the same calls cost from an empty cache; see :mod:`agent.costs`), per image and per 1,000
expressions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.controllers import get_controller
from agent.costs import CostBook, ToolCost
from agent.trace_events import ToolCall, ToolCallLimit, Turn, VLMCall, parse_event
from bench.data.protocol import EvalProtocol
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.records import SUMMARY_SCHEMA_VERSION, CostRow, RunConfig, RunLabel, SampleRecord, Summary
from tools.errors import ConfigError


def run_label(config: RunConfig) -> RunLabel:
    """The few settings that tell runs apart in tables (from ``config.json``). From the
    controller's spec: no refiner for one that never refines, ``max_iter`` 0 for one that
    only proposes and ranks (no refiner, no VLM, no prompt tool: no rounds to run). A
    controller not installed here keeps what its config recorded."""
    res = config.results
    ep, data = res.episode, res.data
    refiner = res.settings.get("options", {}).get("refine_query", {}).get("refiner")
    max_iter = ep.get("max_iter")
    try:
        spec = get_controller(str(ep.get("controller")))
    except ConfigError:
        spec = None
    if spec is not None and not spec.refines:
        refiner = None
        if spec.vlm == "none" and spec.prompt_tool == "none":
            max_iter = 0
    return RunLabel(
        controller=ep.get("controller"),
        max_iter=max_iter,
        refiner=refiner,
        proposer=ep.get("proposer"),
        ranker=ep.get("ranker"),
        weights=res.settings.get("weights"),
        perturb=data.perturb if data is not None else "clean",
        dataset=data.dataset if data is not None else None,
        n=data.n if data is not None else None,
        per_image=data.per_image if data is not None else None,
        tau_conf=ep.get("tau_conf"),
        tau_gap=ep.get("tau_gap"),
    )


# Cost fields reported per image, and the token and USD ones per 1,000 expressions.
PER_IMAGE_KEYS = (
    "calls",
    "computed",
    "seconds",
    "wait_seconds",
    "vlm_wait_seconds",
    "tokens_in",
    "tokens_out",
    "usd",
    "cold_seconds",
    "cold_tokens_in",
    "cold_tokens_out",
    "cold_usd",
)
PER_1000_KEYS = ("tokens_in", "tokens_out", "usd", "cold_tokens_in", "cold_tokens_out", "cold_usd")


def _per(value: float, n: int, scale: float = 1.0) -> float | None:
    return round(value * scale / n, 6) if n else None


def _cost_row(cost: ToolCost, images: int, expressions: int) -> dict[str, Any]:
    row = cost.as_dict()
    row["cache_hit_rate"] = round(cost.cache_hits / cost.calls, 4) if cost.calls else None
    row["per_image"] = {k: _per(row[k], images) for k in PER_IMAGE_KEYS}
    row["per_1000_expressions"] = {k: _per(row[k], expressions, 1000.0) for k in PER_1000_KEYS}
    row["calls_per_example"] = _per(cost.calls, expressions)
    return CostRow.model_validate(row).model_dump()


def _cost_table(book: CostBook, images: int, expressions: int) -> dict[str, Any]:
    """Per tool and in total: what the run spent now, and its cold cost (from an empty cache)."""
    tools = {name: _cost_row(cost, images, expressions) for name, cost in sorted(book.tools.items())}
    return {"tools": tools, "total": _cost_row(book.total(), images, expressions)}


def vlm_health(recs: Sequence[SampleRecord]) -> dict[str, Any]:
    """How many examples needed the VLM (their episode asked it at least once) and how many
    of those fell back, with the fallback rate and the kinds of failure."""
    needed = [r for r in recs if r.needed_vlm]
    fell = [r for r in needed if r.stop_reason == "fallback"]
    return {
        "needed": len(needed),
        "fallbacks": len(fell),
        "fallback_rate": round(len(fell) / len(needed), 6) if needed else None,
        "by_kind": dict(Counter(r.fallback_kind or "unknown" for r in fell).most_common()),
    }


def fallback_problem(summary: Summary, max_rate: float) -> str | None:
    """One line saying that more than ``max_rate`` of the examples that needed the VLM fell
    back, with the commonest kinds; ``None`` when within the limit."""
    vlm = summary.vlm
    rate = vlm.fallback_rate
    if rate is None or rate <= max_rate:
        return None
    kinds = ", ".join(f"{k} {v}" for k, v in list(vlm.by_kind.items())[:3])
    return (
        f"{vlm.fallbacks} of {vlm.needed} examples that needed the VLM fell back "
        f"({rate:.1%} > --max-fallback-rate {max_rate:g}; {kinds}): these are not VLM results; "
        "see fallback_reason in samples.jsonl; fix the endpoint, then run again with --retry-failed"
    )


_FAULT_WORDS = (b'"vlm_call"', b'"rejected"', b'"turn"', b'"tool_call_limit"', b'"episode_timeout"')


def trace_faults(path: Path) -> dict[str, Any]:
    """Faults a run's ``trace.jsonl`` saw, over all its invocations (killed ones included).

    Returns:
        ``vlm_attempt_errors`` (failed VLM attempts, retried or not), ``vlm_retries``,
        ``vlm_errors_by_status`` (HTTP status, or ``"none"`` for timeouts, resets and bad
        bodies), ``rejected_tool_calls`` (unknown tools, bad arguments sent back to the model)
        ``odd_finish_reasons`` (VLM turns ending other than ``stop``/``tool_calls``),
        ``refused_tool_calls`` (calls over a reply's or an episode's cap, answered with an
        error) and ``episode_timeouts`` (episodes that hit their deadline and fell back).
    """
    out: dict[str, Any] = {
        "vlm_attempt_errors": 0,
        "vlm_retries": 0,
        "vlm_errors_by_status": Counter(),
        "rejected_tool_calls": 0,
        "odd_finish_reasons": 0,
        "refused_tool_calls": 0,
        "episode_timeouts": 0,
    }
    if path.exists():
        with path.open("rb") as fh:
            for raw in fh:
                if not any(word in raw for word in _FAULT_WORDS):
                    continue  # most lines are tool calls and guards: skip the JSON parse
                ev = parse_event(raw)  # None: a line torn by a kill, or not an event
                if isinstance(ev, VLMCall) and ev.error:
                    out["vlm_attempt_errors"] += 1
                    out["vlm_errors_by_status"][str(ev.status or "none")] += 1
                    out["vlm_retries"] += ev.retry_in_s is not None
                elif isinstance(ev, ToolCall) and ev.rejected:
                    out["rejected_tool_calls"] += 1
                elif isinstance(ev, Turn) and ev.finish_reason not in ("stop", "tool_calls"):
                    out["odd_finish_reasons"] += 1
                elif isinstance(ev, ToolCallLimit):
                    out["refused_tool_calls"] += ev.refused
                elif ev is not None and ev.event == "episode_timeout":
                    out["episode_timeouts"] += 1
    out["vlm_errors_by_status"] = dict(sorted(out["vlm_errors_by_status"].items()))
    return out


def _faults(recs: Sequence[SampleRecord], book: CostBook, traced: dict[str, Any] | None) -> dict[str, Any]:
    vlm = book.tools.get("vlm")
    fell = [r for r in recs if r.stop_reason == "fallback"]
    return {
        "failed_examples": sum(1 for r in recs if r.failed),
        "fallbacks": len(fell),
        "fallbacks_by_kind": dict(Counter(r.fallback_kind or "unknown" for r in fell).most_common()),
        "vlm_failed_calls": vlm.errors if vlm is not None else 0,
        "tool_errors": sum(c.errors for name, c in book.tools.items() if name != "vlm"),
        **(traced or {}),
    }


def _last_ended(invocations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last invocation that finished (killed ones have no totals)."""
    return next((i for i in reversed(invocations) if i.get("ended", True)), {})


def _cache_health(invocations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whether the tool cache failed in any invocation (it then ran uncached: slower, same
    results), how often, and the first reason."""
    health = [i["cache"] for i in invocations if isinstance(i.get("cache"), dict)]
    reasons = [h["degraded"] for h in health if h.get("degraded")]
    return {
        "degraded_invocations": len(reasons),
        "errors": sum(int(h.get("errors") or 0) for h in health),
        "corrupt_entries": sum(int(h.get("corrupt") or 0) for h in health),
        "reason": reasons[0] if reasons else None,
    }


def _propose_stats(invocations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Propose computations per image run (for SAM 3 one per query), and the proposer's image
    encodes per image run (one per image for SAM 1 and SAM 3 alike, from an empty cache), over
    all invocations and in the last one. Encodes are over the invocations that counted them
    (lines from before they were counted have none); ``None`` when none did."""
    proposer = next((i.get("proposer") for i in reversed(invocations) if i.get("proposer")), None)
    computations = sum(int(i.get("computed", {}).get(proposer, 0)) for i in invocations)
    images_run = sum(int(i.get("images_run", 0)) for i in invocations)
    last = _last_ended(invocations)
    last_images = int(last.get("images_run", 0))
    counted = [i for i in invocations if i.get("image_encodes") is not None]
    encodes = sum(int(i["image_encodes"]) for i in counted)
    encoded_images = sum(int(i.get("images_run", 0)) for i in counted)
    last_encodes = last.get("image_encodes")
    return {
        "tool": proposer,
        "computations": computations,
        "images_run": images_run,
        "per_image": _ratio(computations, images_run),
        "last_invocation_per_image": _ratio(int(last.get("computed", {}).get(proposer, 0)), last_images),
        "image_encodes": encodes if counted else None,
        "image_encodes_per_image": _ratio(encodes, encoded_images) if counted else None,
        "last_invocation_image_encodes_per_image": (
            _ratio(int(last_encodes), last_images) if last_encodes is not None else None
        ),
    }


def _ratio(count: int, images: int) -> float | None:
    return round(count / images, 4) if images else None


def _setup(invocation: Mapping[str, Any]) -> float:
    """An invocation's set-up: its session's and its engine's start."""
    return float(invocation.get("setup_s", 0.0)) + float(invocation.get("engine_start_s", 0.0))


def _timing(invocations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Wall time and throughput of the last finished invocation, wall time of all of them,
    how many were killed before they finished; ``setup_s`` is the one-time start-up before the
    first example (tools built, models loaded, and an engine's start: a Ray cluster and its
    workers, ``engine_start_s``), not part of ``wall_s``."""
    last = _last_ended(invocations)
    last_wall = float(last.get("wall_s", 0.0))
    last_ex = int(last.get("examples_run", 0))
    last_images = int(last.get("images_run", 0))
    return {
        "wall_s": round(last_wall, 3),
        "wall_s_total": round(sum(float(i.get("wall_s", 0.0)) for i in invocations), 3),
        "setup_s": round(_setup(last), 3),
        "setup_s_total": round(sum(_setup(i) for i in invocations), 3),
        "examples_run": last_ex,
        # Four significant digits: a slow run (one example in minutes) is not rounded to 0.
        "examples_per_s": float(f"{last_ex / last_wall:.4g}") if last_wall > 0 else None,
        "seconds_per_image": round(last_wall / last_images, 4) if last_images else None,
        "concurrency": last.get("concurrency"),
        "engine": last.get("engine", "local"),  # lines from before engines existed: local
        "workers": last.get("workers", 1),
        "invocations": len(invocations),
        "killed_invocations": sum(1 for i in invocations if not i.get("ended", True)),
        "event_loop": {k: v for k, v in (last.get("event_loop") or {}).items() if k != "histogram_ms"},
        "cpu_s": last.get("cpu_s"),
        "cpu_ms_per_example": round(1000 * last["cpu_s"] / last_ex, 2)
        if last.get("cpu_s") and last_ex
        else None,
    }


def build_summary(
    records: Mapping[str, SampleRecord],
    order: Sequence[str],
    invocations: Sequence[dict[str, Any]],
    config: RunConfig,
    protocol: EvalProtocol,
    *,
    expected: int | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    traced_faults: dict[str, Any] | None = None,
) -> Summary:
    """Everything ``summary.json`` holds.

    Args:
        records: last record per example_id (from ``samples.jsonl``).
        order: example ids in example order; metrics use the recorded ones in this order.
        invocations: the lines of ``invocations.jsonl``.
        config: ``config.json``.
        protocol: the data set's protocol (its metrics and breakdowns).
        expected: number of examples the run should have.
        bootstrap: resamples for the confidence intervals (0 = none).
        traced_faults: :func:`trace_faults` of the run, merged into ``faults``.
    """
    recs = [records[e] for e in order if e in records]
    failed = [r for r in recs if r.failed]
    images = len({r.image_id for r in recs})
    book = CostBook()
    for r in recs:
        book.merge(CostBook.from_dict({k: c.model_dump() for k, c in r.costs.items()}))
    peaks = [i["peak_cuda_memory_bytes"] for i in invocations if i.get("peak_cuda_memory_bytes") is not None]
    n_expected = expected if expected is not None else len(order)
    examples = config.results.examples
    return Summary.model_validate(
        {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "label": run_label(config),
            "n_images": images,
            "n_expressions": len(recs),
            "complete": len(recs) == n_expected,
            "metrics": protocol.summarize(recs, bootstrap=bootstrap if recs else 0),
            "counts": {
                "expected": n_expected,
                "examples": len(recs),
                "missing": n_expected - len(recs),
                "ok": len(recs) - len(failed),
                "failed": len(failed),
                "images": images,
            },
            # Rows and samples of the data set that held no example (no samples, no sentences).
            "dropped": dict(examples.dropped) if examples is not None else {},
            "stop_reasons": dict(sorted(Counter(r.stop_reason for r in recs).items())),
            "iterations_mean": float(np.mean([r.iterations for r in recs])) if recs else None,
            "episode_seconds_mean": float(np.mean([r.seconds for r in recs])) if recs else None,
            "faults": _faults(recs, book, traced_faults),
            "vlm": vlm_health(recs),
            "failures": [{"example_id": r.example_id, "error": r.error} for r in failed[:20]],
            "costs": _cost_table(book, images, len(recs)),
            "propose": _propose_stats(invocations),
            "cache": _cache_health(invocations),
            "timing": _timing(invocations),
            "peak_cuda_memory_bytes": max(peaks) if peaks else None,
        }
    )
