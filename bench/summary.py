"""``summary.json`` of a run: metrics, counts, stop reasons, VLM health, costs and timing,
from its files.

``n_images`` and ``n_expressions`` say what the numbers are over (``--n`` counts images; each
image has one or more expressions). Costs are per tool and in total, spent now and cold (what
the same calls cost from an empty cache; see :mod:`agent.costs`), per image and per 1,000
expressions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.costs import CostBook, ToolCost
from bench.metrics import bucket_miou, summarize


def run_label(config: dict[str, Any]) -> dict[str, Any]:
    """The few settings that tell runs apart in tables (from ``config.json``)."""
    res = config.get("results", {})
    ep = res.get("episode", {})
    data = res.get("data", {})
    refiner = res.get("settings", {}).get("options", {}).get("refine_query", {}).get("refiner")
    return {
        "controller": ep.get("controller"),
        "max_iter": ep.get("max_iter") if ep.get("controller") != "oneshot" else 0,
        "refiner": refiner if ep.get("controller") != "oneshot" else None,
        "proposer": ep.get("proposer"),
        "ranker": ep.get("ranker"),
        "weights": res.get("settings", {}).get("weights"),
        "perturb": data.get("perturb", "clean"),
        "dataset": data.get("dataset"),
        "n": data.get("n"),
        "per_image": data.get("per_image"),
    }


# Cost fields reported per image, and the token and USD ones per 1,000 expressions.
PER_IMAGE_KEYS = (
    "calls",
    "computed",
    "seconds",
    "wait_seconds",
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
    return row


def _cost_table(book: CostBook, images: int, expressions: int) -> dict[str, Any]:
    """Per tool and in total: what the run spent now, and its cold cost (from an empty cache)."""
    tools = {name: _cost_row(cost, images, expressions) for name, cost in sorted(book.tools.items())}
    return {"tools": tools, "total": _cost_row(book.total(), images, expressions)}


def vlm_health(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many examples needed the VLM (their episode asked it at least once) and how many
    of those fell back, with the fallback rate and the kinds of failure."""
    needed = [r for r in recs if r.get("needed_vlm")]
    fell = [r for r in needed if r.get("stop_reason") == "fallback"]
    return {
        "needed": len(needed),
        "fallbacks": len(fell),
        "fallback_rate": round(len(fell) / len(needed), 6) if needed else None,
        "by_kind": dict(Counter(r.get("fallback_kind") or "unknown" for r in fell).most_common()),
    }


def fallback_problem(summary: dict[str, Any], max_rate: float) -> str | None:
    """One line saying that more than ``max_rate`` of the examples that needed the VLM fell
    back, with the commonest kinds; ``None`` when within the limit."""
    vlm = summary.get("vlm") or {}
    rate = vlm.get("fallback_rate")
    if rate is None or rate <= max_rate:
        return None
    kinds = ", ".join(f"{k} {v}" for k, v in list(vlm.get("by_kind", {}).items())[:3])
    return (
        f"{vlm['fallbacks']} of {vlm['needed']} examples that needed the VLM fell back "
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
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue  # a line torn by a kill
                kind = ev.get("event") if isinstance(ev, dict) else None
                if kind == "vlm_call" and ev.get("error"):
                    out["vlm_attempt_errors"] += 1
                    out["vlm_errors_by_status"][str(ev.get("status") or "none")] += 1
                    out["vlm_retries"] += ev.get("retry_in_s") is not None
                elif kind == "tool_call" and ev.get("rejected"):
                    out["rejected_tool_calls"] += 1
                elif kind == "turn" and ev.get("finish_reason") not in ("stop", "tool_calls"):
                    out["odd_finish_reasons"] += 1
                elif kind == "tool_call_limit":
                    out["refused_tool_calls"] += int(ev.get("refused") or 0)
                elif kind == "episode_timeout":
                    out["episode_timeouts"] += 1
    out["vlm_errors_by_status"] = dict(sorted(out["vlm_errors_by_status"].items()))
    return out


def _faults(recs: Sequence[dict[str, Any]], book: CostBook, traced: dict[str, Any] | None) -> dict[str, Any]:
    vlm = book.tools.get("vlm")
    fell = [r for r in recs if r.get("stop_reason") == "fallback"]
    return {
        "failed_examples": sum(1 for r in recs if r.get("failed")),
        "fallbacks": len(fell),
        "fallbacks_by_kind": dict(Counter(r.get("fallback_kind") or "unknown" for r in fell).most_common()),
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
    """Propose computations per image run, over all invocations and in the last one."""
    proposer = next((i.get("proposer") for i in reversed(invocations) if i.get("proposer")), None)
    computations = sum(int(i.get("computed", {}).get(proposer, 0)) for i in invocations)
    images_run = sum(int(i.get("images_run", 0)) for i in invocations)
    last = _last_ended(invocations)
    last_images = int(last.get("images_run", 0))
    return {
        "tool": proposer,
        "computations": computations,
        "images_run": images_run,
        "per_image": round(computations / images_run, 4) if images_run else None,
        "last_invocation_per_image": (
            round(int(last.get("computed", {}).get(proposer, 0)) / last_images, 4) if last_images else None
        ),
    }


def _timing(invocations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Wall time and throughput of the last finished invocation, wall time of all of them,
    how many were killed before they finished; ``setup_s`` is the one-time start-up (tools
    built, models loaded) before the first example, not part of ``wall_s``."""
    last = _last_ended(invocations)
    last_wall = float(last.get("wall_s", 0.0))
    last_ex = int(last.get("examples_run", 0))
    last_images = int(last.get("images_run", 0))
    return {
        "wall_s": round(last_wall, 3),
        "wall_s_total": round(sum(float(i.get("wall_s", 0.0)) for i in invocations), 3),
        "setup_s": round(float(last.get("setup_s", 0.0)), 3),
        "setup_s_total": round(sum(float(i.get("setup_s", 0.0)) for i in invocations), 3),
        "examples_run": last_ex,
        "examples_per_s": round(last_ex / last_wall, 3) if last_wall > 0 else None,
        "seconds_per_image": round(last_wall / last_images, 4) if last_images else None,
        "concurrency": last.get("concurrency"),
        "engine": last.get("engine", "local"),  # lines from before engines existed: local
        "workers": last.get("workers", 1),
        "invocations": len(invocations),
        "killed_invocations": sum(1 for i in invocations if not i.get("ended", True)),
    }


def _metrics(recs: Sequence[dict[str, Any]], bootstrap: int) -> dict[str, Any]:
    """mIoU, cIoU, Pr@k, CIs and size buckets over the records (failed ones count IoU 0)."""
    metrics = summarize(
        [float(r["iou"]) for r in recs],
        [int(r["inter"]) for r in recs],
        [int(r["union"]) for r in recs],
        B=bootstrap if recs else 0,
    )
    # Size buckets only for examples whose ground-truth area is known (a corrupt mask has none:
    # it counts as IoU 0 above, but is no "small" object).
    sized = [r for r in recs if r.get("bucket") is not None]
    metrics["buckets"] = bucket_miou([float(r["iou"]) for r in sized], [int(r["gt_area"]) for r in sized])
    return metrics


def build_summary(
    records: dict[str, dict[str, Any]],
    order: Sequence[str],
    invocations: Sequence[dict[str, Any]],
    config: dict[str, Any],
    *,
    expected: int | None = None,
    bootstrap: int = 2000,
    traced_faults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything ``summary.json`` holds.

    Args:
        records: last record per example_id (from ``samples.jsonl``).
        order: example ids in example order; metrics use the recorded ones in this order.
        invocations: the lines of ``invocations.jsonl``.
        config: ``config.json``.
        expected: number of examples the run should have.
        bootstrap: resamples for the confidence intervals (0 = none).
        traced_faults: :func:`trace_faults` of the run, merged into ``faults``.
    """
    recs = [records[e] for e in order if e in records]
    failed = [r for r in recs if r.get("failed")]
    images = len({r["image_id"] for r in recs})
    book = CostBook()
    for r in recs:
        book.merge(CostBook.from_dict(r.get("costs") or {}))
    peaks = [i["peak_cuda_memory_bytes"] for i in invocations if i.get("peak_cuda_memory_bytes") is not None]
    n_expected = expected if expected is not None else len(order)
    return {
        "label": run_label(config),
        "n_images": images,
        "n_expressions": len(recs),
        "complete": len(recs) == n_expected,
        "metrics": _metrics(recs, bootstrap),
        "counts": {
            "expected": n_expected,
            "examples": len(recs),
            "missing": n_expected - len(recs),
            "ok": len(recs) - len(failed),
            "failed": len(failed),
            "images": images,
        },
        # Rows and samples of the data set that held no example (no samples, no sentences).
        "dropped": dict(config.get("results", {}).get("examples", {}).get("dropped") or {}),
        "stop_reasons": dict(sorted(Counter(r.get("stop_reason", "error") for r in recs).items())),
        "iterations_mean": float(np.mean([r.get("iterations", 0) for r in recs])) if recs else None,
        "episode_seconds_mean": float(np.mean([r.get("seconds", 0.0) for r in recs])) if recs else None,
        "faults": _faults(recs, book, traced_faults),
        "vlm": vlm_health(recs),
        "failures": [{"example_id": r["example_id"], "error": r.get("error")} for r in failed[:20]],
        "costs": _cost_table(book, images, len(recs)),
        "propose": _propose_stats(invocations),
        "cache": _cache_health(invocations),
        "timing": _timing(invocations),
        "peak_cuda_memory_bytes": max(peaks) if peaks else None,
    }
