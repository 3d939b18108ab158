"""The report's tables, as (headers, rows) of strings: accuracy, buckets, VLM health, cost,
time, reliability, paired comparisons.

Every table says what it is over: ``images`` and ``expressions`` columns (``--n`` counts
images; an image has one or more expressions), ``n=`` in each size bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.metrics import BUCKETS, PR_THRESHOLDS
from bench.perturb import PERTURBATIONS
from bench.report.run_reader import RunView

PR_KEYS = [f"pr@{t:.1f}" for t in PR_THRESHOLDS]

Table = tuple[list[str], list[list[str]]]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ci_text(metrics: dict[str, Any], key: str) -> str:
    ci = metrics.get(key)
    return "—" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def metric_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "run",
        "method",
        "perturb",
        "images",
        "expressions",
        "failed",
        "mIoU",
        "mIoU 95% CI",
        "cIoU",
        *[k.replace("pr@", "Pr@") for k in PR_KEYS],
        "iters",
        "stop reasons",
    ]
    rows = []
    for r in runs:
        m, c = r.summary["metrics"], r.summary["counts"]
        stops = ", ".join(f"{k} {v}" for k, v in r.summary.get("stop_reasons", {}).items())
        rows.append(
            [
                r.name,
                r.method,
                r.label.get("perturb", "clean"),
                str(c.get("images", "—")),
                str(c["examples"]),
                str(c["failed"]),
                fmt(m.get("miou")),
                ci_text(m, "miou_ci"),
                fmt(m.get("ciou")),
                *[fmt(m.get(k)) for k in PR_KEYS],
                fmt(r.summary.get("iterations_mean"), 2),
                stops,
            ]
        )
    return headers, rows


def bucket_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    headers = ["run", *[f"{b} mIoU" for b in BUCKETS]]
    rows = []
    for r in runs:
        buckets = r.summary["metrics"].get("buckets", {})
        cells = []
        for b in BUCKETS:
            n = buckets.get(b, {}).get("n", 0)
            cells.append(f"{fmt(buckets.get(b, {}).get('miou'))} (n={n})")
        rows.append([r.name, *cells])
    return headers, rows


def _tokens(per: dict[str, Any], prefix: str = "") -> float:
    return float((per.get(f"{prefix}tokens_in") or 0) + (per.get(f"{prefix}tokens_out") or 0))


def at_least(row: dict[str, Any], text: str) -> str:
    """Mark a cold figure that leaves out hits on records without a stored cost."""
    return f"≥{text}" if row.get("cold_unknown") else text


def served_text(row: dict[str, Any]) -> str:
    """``"347: 20/0/327"``: calls, then computed / joined / cached (``?`` in older runs)."""
    return f"{row['calls']}: {row.get('computed', '?')}/{row.get('joined', '?')}/{row['cache_hits']}"


def cost_table(runs: Sequence[RunView]) -> Table:
    """Per run and tool: how calls were served, spent now and cold (from an empty cache)."""
    headers = [
        "run",
        "tool",
        "calls: computed/joined/cached",
        "compute s/img",
        "wait s/img",
        "cold s/img",
        "tokens/img",
        "cold tokens/img",
        "USD/1k expr",
        "cold USD/1k expr",
    ]
    rows = []
    for r in runs:
        for tool, row in r.summary["costs"]["tools"].items():
            per, k = row["per_image"], row.get("per_1000_expressions", {})
            rows.append(
                [
                    r.name,
                    tool,
                    served_text(row),
                    fmt(per["seconds"], 4),
                    fmt(per.get("wait_seconds"), 4),
                    at_least(row, fmt(per.get("cold_seconds"), 4)),
                    fmt(_tokens(per), 1),
                    at_least(row, fmt(_tokens(per, "cold_"), 1)),
                    fmt(k.get("usd"), 4),
                    at_least(row, fmt(k.get("cold_usd"), 4)),
                ]
            )
    return headers, rows


def episode_cost_table(costs: dict[str, Any]) -> Table:
    """One example's (or episode's) costs per tool, as recorded: how its calls were served,
    what they spent now and their cold cost."""
    headers = [
        "tool",
        "calls: computed/joined/cached",
        "errors",
        "compute s",
        "wait s",
        "cold s",
        "tokens in/out",
        "USD",
        "cold USD",
    ]
    rows = []
    for tool, row in costs.items():
        if not isinstance(row, dict) or "calls" not in row or "cache_hits" not in row:
            continue
        rows.append(
            [
                tool,
                served_text(row),
                str(row.get("errors", 0)),
                fmt(row.get("seconds"), 4),
                fmt(row.get("wait_seconds"), 4),
                at_least(row, fmt(row.get("cold_seconds"), 4)),
                f"{row.get('tokens_in', 0)}/{row.get('tokens_out', 0)}",
                fmt(row.get("usd"), 6),
                at_least(row, fmt(row.get("cold_usd"), 6)),
            ]
        )
    return headers, rows


def run_cost_table(runs: Sequence[RunView]) -> Table:
    """Per run, in total: the cold cost (what the run costs from an empty cache, so runs
    compare whatever order they ran in and whatever cache they shared) and what it spent."""
    headers = [
        "run",
        "images",
        "expressions",
        "cold s/img",
        "cold tokens/img",
        "cold tokens/1k expr",
        "cold USD/img",
        "cold USD/1k expr",
        "spent s/img",
        "spent USD/1k expr",
    ]
    rows = []
    for r in runs:
        total, c = r.summary["costs"]["total"], r.summary["counts"]
        per, k = total["per_image"], total.get("per_1000_expressions", {})
        rows.append(
            [
                r.name,
                str(c.get("images", "—")),
                str(c["examples"]),
                at_least(total, fmt(per.get("cold_seconds"), 4)),
                at_least(total, fmt(_tokens(per, "cold_"), 1)),
                at_least(total, fmt(_tokens(k, "cold_"), 0)),
                at_least(total, fmt(per.get("cold_usd"), 6)),
                at_least(total, fmt(k.get("cold_usd"), 4)),
                fmt(per["seconds"], 4),
                fmt(k.get("usd"), 4),
            ]
        )
    return headers, rows


def kinds_text(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in by_kind.items()) or "—"


def _with_status(faults: dict[str, Any]) -> str:
    """``"12 (HTTP 500 10, no status 2)"``: failed VLM attempts and their statuses."""
    n = int(faults.get("vlm_attempt_errors", 0))
    if not n:
        return "0"
    statuses = faults.get("vlm_errors_by_status") or {}
    named = {("no status" if k == "none" else f"HTTP {k}"): v for k, v in statuses.items()}
    return f"{n} ({kinds_text(named)})"


def health_table(runs: Sequence[RunView]) -> Table | None:
    """VLM health and faults per run; None when no run asked the VLM or saw a fault."""
    headers = ["run", "needed VLM", "fell back", "rate", "fallbacks by kind", "VLM attempt errors", "failed"]
    rows = []
    for r in runs:
        vlm, faults = r.summary.get("vlm") or {}, r.summary.get("faults") or {}
        rows.append(
            [
                r.name,
                str(vlm.get("needed", 0)),
                str(vlm.get("fallbacks", 0)),
                "—" if vlm.get("fallback_rate") is None else f"{vlm['fallback_rate']:.1%}",
                kinds_text(faults.get("fallbacks_by_kind") or {}),
                _with_status(faults),
                str(faults.get("failed_examples", 0)),
            ]
        )
    interesting = any(row[1] != "0" or row[2] != "0" or row[5] != "0" for row in rows)
    return (headers, rows) if interesting else None


def paired_table(pairs: Sequence[tuple[str, str, dict[str, Any]]]) -> Table:
    """Rows of :func:`bench.report.paired.paired_comparison` results: ``(A, B, result)``."""
    headers = [
        "B vs A",
        "images",
        "expressions",
        "mIoU A",
        "mIoU B",
        "B - A",
        "95% CI (images)",
        "better/worse/same",
    ]
    rows = []
    for a, b, res in pairs:
        ci = res.get("ci")
        rows.append(
            [
                f"{b} vs {a}",
                str(res["n_images"]),
                str(res["n_expressions"]),
                fmt(res.get("miou_a")),
                fmt(res.get("miou_b")),
                "—" if res.get("diff") is None else f"{res['diff']:+.3f}",
                "—" if not ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]",
                f"{res['improved']}/{res['degraded']}/{res['unchanged']} (±{res['tolerance']:g})",
            ]
        )
    return headers, rows


def timing_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "run",
        "wall s",
        "set-up s",
        "examples/s",
        "s/image",
        "concurrency",
        "propose/img (cold=1)",
        "peak CUDA MiB",
    ]
    rows = []
    for r in runs:
        t, p = r.summary["timing"], r.summary["propose"]
        peak = r.summary.get("peak_cuda_memory_bytes")
        rows.append(
            [
                r.name,
                fmt(t.get("wall_s_total"), 2),
                fmt(t.get("setup_s_total"), 2),
                fmt(t.get("examples_per_s"), 1),
                fmt(t.get("seconds_per_image"), 4),
                fmt(t.get("concurrency")),
                fmt(p.get("per_image"), 2),
                "—" if peak is None else f"{peak / 2**20:.0f}",
            ]
        )
    return headers, rows


def reliability_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]] | None:
    """mIoU per method (rows) and perturbation (columns); None without perturbed runs."""
    perturbs = [p for p in PERTURBATIONS if any(r.label.get("perturb", "clean") == p for r in runs)]
    if perturbs == ["clean"] or not perturbs:
        return None
    grid: dict[str, dict[str, float | None]] = {}
    for r in runs:
        grid.setdefault(r.method, {})[r.label.get("perturb", "clean")] = r.summary["metrics"].get("miou")
    headers = ["method", *perturbs]
    rows = []
    for method, cells in grid.items():
        if len(cells) > 1:
            rows.append([method, *[fmt(cells.get(p)) for p in perturbs]])
    return (headers, rows) if rows else None


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns, for the terminal."""
    widths = [
        max(len(str(h)), *(len(str(row[i])) for row in rows)) if rows else len(str(h))
        for i, h in enumerate(headers)
    ]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)
