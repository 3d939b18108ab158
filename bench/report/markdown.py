"""Reports of one or several runs side by side: markdown tables, figures, terminal tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench.data.registry import metric_columns, protocol_named
from bench.frontier.report import guard_sections
from bench.metrics import DEFAULT_BOOTSTRAP, FEW_IMAGES, rough_interval_note
from bench.records import Summary
from bench.report.figures import make_figures
from bench.report.paired import DEFAULT_TOLERANCE, paired_comparison, paired_line
from bench.report.run_reader import RANDOM_WEIGHTS_WARNING, RunView, random_weight_runs
from bench.report.tables import (
    at_least,
    breakdown_tables,
    ci_text,
    cost_table,
    fmt,
    headline_of,
    health_table,
    kinds_text,
    md_table,
    metric_table,
    paired_table,
    rate_text,
    reliability_table,
    run_cost_table,
    served_text,
    text_table,
    timing_table,
)
from bench.samples import read_samples

Pair = tuple[str, str, dict[str, Any]]

__all__ = [
    "paired_against",
    "print_pairs",
    "print_summary",
    "print_table",
    "write_report",
    "write_run_report",
]


def print_table(runs: Sequence[RunView], file: IO[str] | None = None) -> None:
    """The headline table (without CI and stop-reason columns) on the terminal."""
    headers, rows = metric_table(runs)
    keep = [i for i, h in enumerate(headers) if not h.endswith(" 95% CI") and h != "stop reasons"]
    if random_weight_runs(runs):
        print(f"note: {RANDOM_WEIGHTS_WARNING}", file=file or sys.stdout)
    print(
        text_table([headers[i] for i in keep], [[row[i] for i in keep] for row in rows]),
        file=file or sys.stdout,
    )


def print_summary(name: str, summary: Summary, file: IO[str] | None = None) -> None:
    """One run's headline numbers in a few lines: accuracy, time, how each tool's calls were
    served (computed / joined / cached) and what they cost, VLM health and faults."""
    out = file or sys.stdout
    m, c, t = summary.metrics, summary.counts, summary.timing
    key, label = headline_of(m)
    # The protocol's first metrics besides the headline (mask IoU: cIoU, Pr@0.5).
    others = " ".join(f"{lab}={fmt(m.value(k))}" for k, lab in metric_columns(m)[:3] if k != key)
    rough = rough_interval_note(c.images) if m.ci(key) is not None else ""
    print(
        f"{name}: {c.examples}/{c.expected} expressions on {fmt(c.images)} images, "
        f"failed={c.failed} {label}={fmt(m.value(key))} {ci_text(m, key)}{f' ({rough})' if rough else ''} "
        f"{others} iters={fmt(summary.iterations_mean, 2)}",
        file=out,
    )
    print(
        f"  {t.examples_run} run in {fmt(t.wall_s, 2)} s after {fmt(t.setup_s, 2)} s "
        f"set-up ({rate_text(t.examples_per_s)} ex/s, "
        f"{fmt(t.seconds_per_image, 3)} s/image); per image: propose computations "
        f"{fmt(summary.propose.last_invocation_per_image, 2)}, image encodes "
        f"{fmt(summary.propose.last_invocation_image_encodes_per_image, 2)}",
        file=out,
    )
    lag = t.event_loop
    if lag.samples:
        cpu = f"; CPU {fmt(t.cpu_ms_per_example, 1)} ms/example" if t.cpu_ms_per_example is not None else ""
        print(
            f"  event-loop lag p99 {fmt(lag.p99_ms, 1)} ms, max {fmt(lag.max_ms, 1)} ms "
            f"({lag.stalls_over_250ms} stalls over 250 ms){cpu}",
            file=out,
        )
    for tool, row in summary.costs.tools.items():
        tokens = row.tokens_in + row.tokens_out
        cold_tokens = row.cold_tokens_in + row.cold_tokens_out
        cold_spent = at_least(row, f"{cold_tokens} tokens ${row.cold_usd:.4f}")
        spent = f", {tokens} tokens ${row.usd:.4f} (cold {cold_spent})"
        cold_s = at_least(row, fmt(row.cold_seconds, 2))
        print(
            f"  {tool}: {served_text(row)} computed/joined/cached; compute {fmt(row.seconds, 2)} s, "
            f"wait {fmt(row.wait_seconds, 2)} s, cold {cold_s} s" + (spent if tokens or cold_tokens else ""),
            file=out,
        )
    vlm, faults = summary.vlm, summary.faults
    if vlm.needed or faults.fallbacks:
        print(
            f"  VLM: {vlm.needed} needed it, {vlm.fallbacks} fell back "
            f"({kinds_text(faults.fallbacks_by_kind)})",
            file=out,
        )
    counted = faults.counted()
    by_status = faults.vlm_errors_by_status
    if counted:
        status = f" (HTTP status: {kinds_text(by_status)})" if by_status else ""
        print(f"  faults: {kinds_text(counted)}{status}", file=out)


def paired_against(
    runs: Sequence[RunView],
    base: RunView,
    *,
    B: int = DEFAULT_BOOTSTRAP,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[Pair]:
    """Each run other than ``base`` compared with it, example by example (cluster bootstrap), on
    the headline metric of ``base``'s protocol.

    Raises:
        DatasetError: no installed adapter defines ``base``'s protocol.
    """
    base_recs, _ = read_samples(base.run_dir)
    metrics = base.summary.metrics
    headline = protocol_named(metrics.protocol).metric(metrics.headline)
    pairs = []
    for r in runs:
        if r is not base:
            recs, _ = read_samples(r.run_dir)
            res = paired_comparison(base_recs, recs, metric=headline, B=B, tolerance=tolerance)
            pairs.append((base.name, r.name, res))
    return pairs


def print_pairs(pairs: Sequence[Pair], file: IO[str] | None = None) -> None:
    for a, b, res in pairs:
        print(paired_line(a, b, res), file=file or sys.stdout)


def caveats(runs: Sequence[RunView], pairs: Sequence[Pair] = ()) -> list[str]:
    """What the report's numbers do not show by themselves: intervals over so few images that
    they are rough, and paired comparisons of runs that do not hold the same expressions."""
    out = []
    images = {r.name: r.summary.counts.images for r in runs}
    few = [f"{name} ({n} images)" for name, n in images.items() if rough_interval_note(n)]
    if few:
        out.append(
            f"95% intervals over fewer than {FEW_IMAGES} images are rough (the bootstrap resamples "
            f"images, and has few to resample): {', '.join(few)}"
        )
    for a, b, res in pairs:
        if res.get("only_a") or res.get("only_b"):
            n = res["n_expressions"]
            out.append(
                f"{b} vs {a}: paired over the {n} expressions both runs hold "
                f"({a} has {n + res['only_a']}, {b} {n + res['only_b']}); the others are left out"
            )
    return out


def render_markdown(
    runs: Sequence[RunView],
    title: str,
    notes: Sequence[str] = (),
    figures: Sequence[Path] = (),
    base: Path | None = None,
    pairs: Sequence[Pair] = (),
    extra: Sequence[str] = (),
) -> str:
    """The report's markdown; ``extra`` are finished sections appended before the figures."""
    parts = [f"# {title}", ""]
    randomised = random_weight_runs(runs)
    if randomised:
        parts += [f"> **{RANDOM_WEIGHTS_WARNING}** ({', '.join(randomised)})", ""]
    parts += [f"- {n}" for n in notes]
    if notes:
        parts.append("")
    parts += [f"> {c}" for c in caveats(runs, pairs)]
    if caveats(runs, pairs):
        parts.append("")
    incomplete = [r.name for r in runs if not r.summary.complete]
    if incomplete:
        parts += [f"> Incomplete runs (resume them): {', '.join(incomplete)}", ""]
    sections: list[tuple[str, tuple[list[str], list[list[str]]] | None]] = [
        ("Accuracy", metric_table(runs)),
        (
            "Paired comparison (B - A on the same expressions; 95% CI by bootstrap over images)",
            paired_table(pairs) if pairs else None,
        ),
        ("Reliability (the headline metric under perturbations)", reliability_table(runs)),
        *breakdown_tables(runs),
        ("VLM health and faults", health_table(runs)),
        ("Cost per run (cold: from an empty cache)", run_cost_table(runs)),
        ("Cost per tool", cost_table(runs)),
        ("Time and memory", timing_table(runs)),
    ]
    for heading, table in sections:
        if table is not None:
            parts += [f"## {heading}", "", md_table(*table), ""]
    parts += [*extra]
    if figures:
        parts += ["## Figures", ""]
        for f in figures:
            rel = f.relative_to(base) if base is not None and f.is_relative_to(base) else f
            parts += [f"![{f.stem}]({rel.as_posix()})", ""]
    return "\n".join(parts)


def write_report(
    out_dir: str | Path,
    runs: Sequence[RunView],
    *,
    title: str = "refseg bench report",
    notes: Sequence[str] = (),
    pairs: Sequence[Pair] = (),
    extra: Sequence[str] = (),
) -> Path:
    """Write ``out_dir/report.md`` and ``out_dir/figures/*.png``; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(out, runs)
    path = out / "report.md"
    path.write_text(render_markdown(runs, title, notes, figures, out, pairs, extra), encoding="utf-8")
    return path


def write_run_report(run_dir: Path, summary: Summary, notes: Sequence[str] = ()) -> Path:
    """``bench run``'s ``RUN_DIR/report.md`` and figures, from its files."""
    import numpy as np

    from bench.samples import IOUS

    view = RunView(run_dir.name or str(run_dir), run_dir, summary, np.load(run_dir / IOUS))
    guard = guard_sections(run_dir, [(view.name, run_dir)])  # calibration; frontier at 1/1
    return write_report(run_dir, [view], title=f"refseg bench run {view.name}", notes=notes, extra=guard)
