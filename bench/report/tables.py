"""The report's tables, as (headers, rows) of strings: accuracy, breakdowns, VLM health,
cost, time, reliability, paired comparisons.

Every table says what it is over: ``images`` and ``expressions`` columns (``--n`` counts
images; an image has one or more expressions), ``n=`` in each breakdown group. The accuracy
columns are the metrics each run's protocol defines (:mod:`bench.data.protocol`), read from
its summary: a new metric reaches every table without editing this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.data.registry import metric_columns, summary_protocol
from bench.perturb import PERTURBATIONS
from bench.records import MetricsSummary, ToolCostRecord
from bench.report.run_reader import RunView

Table = tuple[list[str], list[list[str]]]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def rate_text(value: float | None) -> str:
    """A rate (examples per second) with the digits it needs: ``12.3``, ``0.42``, ``0.0041``
    (a slow run is never shown as ``0.0``)."""
    if value is None:
        return "—"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def ci_text(metrics: MetricsSummary, key: str) -> str:
    ci = metrics.ci(key)
    return "—" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _metric_keys(runs: Sequence[RunView]) -> list[tuple[str, str]]:
    """``(key, label)`` of every metric of the runs' protocols, in order, without repeats."""
    seen: dict[str, str] = {}
    for r in runs:
        for key, label in metric_columns(r.summary.metrics):
            seen.setdefault(key, label)
    return list(seen.items())


def headline_of(metrics: MetricsSummary) -> tuple[str, str]:
    """``(key, label)`` of the run's headline metric."""
    return next(
        ((k, lab) for k, lab in metric_columns(metrics) if k == metrics.headline), (metrics.headline,) * 2
    )


def metric_table(runs: Sequence[RunView]) -> Table:
    """Each run's protocol metrics (the headline's 95% CI beside it), counts and stop reasons."""
    keys = _metric_keys(runs)
    headline = headline_of(runs[0].summary.metrics)[0] if runs else "miou"
    columns: list[str] = []
    for key, label in keys:
        columns += [label, f"{label} 95% CI"] if key == headline else [label]
    headers = [
        "run",
        "method",
        "perturb",
        "images",
        "expressions",
        "failed",
        *columns,
        "iters",
        "stop reasons",
    ]
    rows = []
    for r in runs:
        m, c = r.summary.metrics, r.summary.counts
        stops = ", ".join(f"{k} {v}" for k, v in r.summary.stop_reasons.items())
        cells: list[str] = []
        for key, _label in keys:
            cells += [fmt(m.value(key)), ci_text(m, key)] if key == headline else [fmt(m.value(key))]
        rows.append(
            [
                r.name,
                r.method,
                r.label.perturb,
                fmt(c.images),
                str(c.examples),
                str(c.failed),
                *cells,
                fmt(r.summary.iterations_mean, 2),
                stops,
            ]
        )
    return headers, rows


def breakdown_tables(runs: Sequence[RunView]) -> list[tuple[str, Table]]:
    """One table per breakdown of the runs' protocols (e.g. mIoU by object size), titled by
    its label: a column per group and metric, each cell ``value (n=...)``."""
    labels: dict[str, str] = {}  # breakdown key -> label
    groups: dict[str, list[str]] = {}
    metrics: dict[str, list[str]] = {}
    names = dict(_metric_keys(runs))
    for r in runs:
        protocol = summary_protocol(r.summary.metrics.protocol)
        for b in protocol.breakdowns if protocol is not None else ():
            labels.setdefault(b.key, b.label)
        for key, by_group in r.summary.metrics.breakdowns.items():
            labels.setdefault(key, key)
            groups[key] = list(dict.fromkeys([*groups.get(key, []), *by_group]))
            found = [m for stat in by_group.values() for m in stat.model_extra or {}]
            metrics[key] = list(dict.fromkeys([*metrics.get(key, []), *found]))
    tables = []
    for key in groups:
        headers = ["run", *[f"{g} {names.get(m, m)}" for g in groups[key] for m in metrics[key]]]
        rows = []
        for r in runs:
            by_group = r.summary.metrics.breakdowns.get(key, {})
            cells = [
                f"{fmt(stat.value(m))} (n={stat.n})" if (stat := by_group.get(g)) is not None else "—"
                for g in groups[key]
                for m in metrics[key]
            ]
            rows.append([r.name, *cells])
        tables.append((f"By {labels[key]}", (headers, rows)))
    return tables


def _tokens(per: dict[str, float | None], prefix: str = "") -> float:
    return float((per.get(f"{prefix}tokens_in") or 0) + (per.get(f"{prefix}tokens_out") or 0))


def at_least(row: ToolCostRecord, text: str) -> str:
    """Mark a cold figure that leaves out hits on records without a stored cost."""
    return f"≥{text}" if row.cold_unknown else text


def served_text(row: ToolCostRecord) -> str:
    """``"347: 20/0/327"``: calls, then computed / joined / cached."""
    return f"{row.calls}: {row.computed}/{row.joined}/{row.cache_hits}"


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
        for tool, row in r.summary.costs.tools.items():
            per, k = row.per_image, row.per_1000_expressions
            rows.append(
                [
                    r.name,
                    tool,
                    served_text(row),
                    fmt(per.get("seconds"), 4),
                    fmt(per.get("wait_seconds"), 4),
                    at_least(row, fmt(per.get("cold_seconds"), 4)),
                    fmt(_tokens(per), 1),
                    at_least(row, fmt(_tokens(per, "cold_"), 1)),
                    fmt(k.get("usd"), 4),
                    at_least(row, fmt(k.get("cold_usd"), 4)),
                ]
            )
    return headers, rows


def episode_cost_table(costs: dict[str, ToolCostRecord]) -> Table:
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
        rows.append(
            [
                tool,
                served_text(row),
                str(row.errors),
                fmt(row.seconds, 4),
                fmt(row.wait_seconds, 4),
                at_least(row, fmt(row.cold_seconds, 4)),
                f"{row.tokens_in}/{row.tokens_out}",
                fmt(row.usd, 6),
                at_least(row, fmt(row.cold_usd, 6)),
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
        total, c = r.summary.costs.total, r.summary.counts
        per, k = total.per_image, total.per_1000_expressions
        rows.append(
            [
                r.name,
                fmt(c.images),
                str(c.examples),
                at_least(total, fmt(per.get("cold_seconds"), 4)),
                at_least(total, fmt(_tokens(per, "cold_"), 1)),
                at_least(total, fmt(_tokens(k, "cold_"), 0)),
                at_least(total, fmt(per.get("cold_usd"), 6)),
                at_least(total, fmt(k.get("cold_usd"), 4)),
                fmt(per.get("seconds"), 4),
                fmt(k.get("usd"), 4),
            ]
        )
    return headers, rows


def kinds_text(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in by_kind.items()) or "—"


def _with_status(faults: Any) -> str:
    """``"12 (HTTP 500 10, no status 2)"``: failed VLM attempts and their statuses."""
    n = faults.vlm_attempt_errors
    if not n:
        return "0"
    named = {("no status" if k == "none" else f"HTTP {k}"): v for k, v in faults.vlm_errors_by_status.items()}
    return f"{n} ({kinds_text(named)})"


def health_table(runs: Sequence[RunView]) -> Table | None:
    """VLM health and faults per run; None when no run asked the VLM or saw a fault."""
    headers = ["run", "needed VLM", "fell back", "rate", "fallbacks by kind", "VLM attempt errors", "failed"]
    rows = []
    for r in runs:
        vlm, faults = r.summary.vlm, r.summary.faults
        rows.append(
            [
                r.name,
                str(vlm.needed),
                str(vlm.fallbacks),
                "—" if vlm.fallback_rate is None else f"{vlm.fallback_rate:.1%}",
                kinds_text(faults.fallbacks_by_kind),
                _with_status(faults),
                str(faults.failed_examples),
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
        "metric",
        "A",
        "B",
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
                str(res.get("label", "mIoU")),
                fmt(res.get("value_a")),
                fmt(res.get("value_b")),
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
        "propose/img",
        "encodes/img",
        "peak CUDA MiB",
    ]
    rows = []
    for r in runs:
        t, p = r.summary.timing, r.summary.propose
        peak = r.summary.peak_cuda_memory_bytes
        rows.append(
            [
                r.name,
                fmt(t.wall_s_total, 2),
                fmt(t.setup_s_total, 2),
                rate_text(t.examples_per_s),
                fmt(t.seconds_per_image, 4),
                fmt(t.concurrency),
                fmt(p.per_image, 2),
                fmt(p.image_encodes_per_image, 2),
                "—" if peak is None else f"{peak / 2**20:.0f}",
            ]
        )
    return headers, rows


def reliability_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]] | None:
    """The headline metric per method (rows) and perturbation (columns); None without
    perturbed runs."""
    perturbs = [p for p in PERTURBATIONS if any(r.label.perturb == p for r in runs)]
    if perturbs == ["clean"] or not perturbs:
        return None
    grid: dict[str, dict[str, float | None]] = {}
    for r in runs:
        m = r.summary.metrics
        grid.setdefault(r.method, {})[r.label.perturb] = m.value(m.headline)
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
