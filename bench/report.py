"""Reports of one or several runs side by side: markdown tables, figures, terminal tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench.figures import make_figures
from bench.run_view import RANDOM_WEIGHTS_WARNING, RunView, load_run, load_runs, random_weight_runs
from bench.tables import (
    bucket_table,
    ci_text,
    cost_table,
    fmt,
    md_table,
    metric_table,
    reliability_table,
    text_table,
    timing_table,
)

__all__ = [
    "RunView",
    "load_run",
    "load_runs",
    "md_table",
    "print_summary",
    "print_table",
    "text_table",
    "write_report",
]


def print_table(runs: Sequence[RunView], file: IO[str] | None = None) -> None:
    """The headline table (without CI and stop-reason columns) on the terminal."""
    headers, rows = metric_table(runs)
    keep = [i for i, h in enumerate(headers) if h not in ("mIoU 95% CI", "stop reasons")]
    if random_weight_runs(runs):
        print(f"note: {RANDOM_WEIGHTS_WARNING}", file=file or sys.stdout)
    print(
        text_table([headers[i] for i in keep], [[row[i] for i in keep] for row in rows]),
        file=file or sys.stdout,
    )


def print_summary(name: str, summary: dict[str, Any], file: IO[str] | None = None) -> None:
    """One run's headline numbers in a few lines."""
    out = file or sys.stdout
    m, c, t = summary["metrics"], summary["counts"], summary["timing"]
    print(
        f"{name}: n={c['examples']}/{c['expected']} failed={c['failed']} mIoU={fmt(m.get('miou'))} "
        f"{ci_text(m, 'miou_ci')} cIoU={fmt(m.get('ciou'))} Pr@0.5={fmt(m.get('pr@0.5'))} "
        f"iters={fmt(summary.get('iterations_mean'), 2)}",
        file=out,
    )
    print(
        f"  {t.get('examples_run')} run in {fmt(t.get('wall_s'), 2)} s "
        f"({fmt(t.get('examples_per_s'), 1)} ex/s, "
        f"{fmt(t.get('seconds_per_image'), 3)} s/image); propose per image "
        f"{fmt(summary['propose'].get('last_invocation_per_image'), 2)}",
        file=out,
    )


def render_markdown(
    runs: Sequence[RunView],
    title: str,
    notes: Sequence[str] = (),
    figures: Sequence[Path] = (),
    base: Path | None = None,
) -> str:
    parts = [f"# {title}", ""]
    randomised = random_weight_runs(runs)
    if randomised:
        parts += [f"> **{RANDOM_WEIGHTS_WARNING}** ({', '.join(randomised)})", ""]
    parts += [f"- {n}" for n in notes]
    if notes:
        parts.append("")
    incomplete = [r.name for r in runs if not r.summary.get("complete", True)]
    if incomplete:
        parts += [f"> Incomplete runs (resume them): {', '.join(incomplete)}", ""]
    sections: list[tuple[str, tuple[list[str], list[list[str]]] | None]] = [
        ("Accuracy", metric_table(runs)),
        ("Reliability (mIoU under perturbations)", reliability_table(runs)),
        ("Size buckets", bucket_table(runs)),
        ("Cost per tool", cost_table(runs)),
        ("Time and memory", timing_table(runs)),
    ]
    for heading, table in sections:
        if table is not None:
            parts += [f"## {heading}", "", md_table(*table), ""]
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
) -> Path:
    """Write ``out_dir/report.md`` and ``out_dir/figures/*.png``; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(out, runs)
    path = out / "report.md"
    path.write_text(render_markdown(runs, title, notes, figures, out), encoding="utf-8")
    return path
