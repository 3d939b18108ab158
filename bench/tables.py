"""The report's tables, as (headers, rows) of strings: accuracy, buckets, cost, time, reliability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.metrics import BUCKETS, PR_THRESHOLDS
from bench.perturb import PERTURBATIONS
from bench.run_view import RunView

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
        "n",
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
    headers = ["run", *[f"{b} mIoU (n)" for b in BUCKETS]]
    rows = []
    for r in runs:
        buckets = r.summary["metrics"].get("buckets", {})
        rows.append(
            [
                r.name,
                *[
                    f"{fmt(buckets.get(b, {}).get('miou'))} ({buckets.get(b, {}).get('n', 0)})"
                    for b in BUCKETS
                ],
            ]
        )
    return headers, rows


def cost_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    headers = ["run", "tool", "calls/img", "cache hits", "s/img", "tokens/img", "USD/img"]
    rows = []
    for r in runs:
        for tool, row in r.summary["costs"]["tools"].items():
            per = row["per_image"]
            tokens = (per["tokens_in"] or 0) + (per["tokens_out"] or 0)
            rows.append(
                [
                    r.name,
                    tool,
                    fmt(per["calls"], 2),
                    f"{row['cache_hits']}/{row['calls']}",
                    fmt(per["seconds"], 4),
                    fmt(float(tokens), 1),
                    fmt(per["usd"], 5),
                ]
            )
    return headers, rows


def timing_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "run",
        "wall s",
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
