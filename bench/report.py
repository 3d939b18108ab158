"""Reports of one or several runs side by side: markdown tables, figures, terminal tables.

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot, no GUI
backend, no global state), so reports render on headless machines and inside tests.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from bench.metrics import BUCKETS, PR_THRESHOLDS
from bench.perturb import PERTURBATIONS
from bench.samples import IOUS, SAMPLES, SUMMARY, read_json
from tools.errors import InputError

PR_KEYS = [f"pr@{t:.1f}" for t in PR_THRESHOLDS]


@dataclass
class RunView:
    """One run as the report sees it."""

    name: str
    run_dir: Path
    summary: dict[str, Any]
    ious: np.ndarray

    @property
    def label(self) -> dict[str, Any]:
        return dict(self.summary.get("label", {}))

    @property
    def method(self) -> str:
        """``oneshot``, ``loop(rules) x3``, ... (the configuration without the perturbation)."""
        lab = self.label
        if lab.get("controller") == "oneshot":
            return "oneshot"
        if lab.get("controller") == "agent":
            return "agent"
        return f"{lab.get('controller')}({lab.get('refiner')}) x{lab.get('max_iter')}"


RANDOM_WEIGHTS_WARNING = "random weights (--weights random): figures for smoke tests and timing only"


def random_weight_runs(runs: Sequence[RunView]) -> list[str]:
    return [r.name for r in runs if r.label.get("weights") == "random"]


def load_run(run_dir: str | Path, name: str | None = None, *, bootstrap: int | None = None) -> RunView:
    """Read a run folder (recomputing ``summary.json`` when absent, older than ``samples.jsonl``
    (an interrupted invocation), or with a new ``bootstrap``)."""
    from bench.runner import write_outputs

    path = Path(run_dir)
    if not (path / SAMPLES).exists():
        raise InputError(
            f"{path}: not a run folder (no {SAMPLES}); run `refseg bench run --out {path}` first"
        )
    summary = read_json(path / SUMMARY)
    stale = summary is not None and (path / SAMPLES).stat().st_mtime_ns > (path / SUMMARY).stat().st_mtime_ns
    if summary is None or stale or bootstrap is not None:
        summary = write_outputs(path, bootstrap=2000 if bootstrap is None else bootstrap)
    try:
        ious = np.load(path / IOUS, allow_pickle=False) if (path / IOUS).exists() else np.zeros(0)
    except (ValueError, OSError):  # damaged, or a pickle (never loaded): rebuild from samples.jsonl
        summary = write_outputs(path, bootstrap=2000 if bootstrap is None else bootstrap)
        ious = np.load(path / IOUS, allow_pickle=False)
    return RunView(name or path.name, path, summary, ious)


def load_runs(dirs: Sequence[str | Path], *, bootstrap: int | None = None) -> list[RunView]:
    """Several runs; names are the folder names (made unique)."""
    runs, seen = [], set()
    for d in dirs:
        name = Path(d).name or str(d)
        while name in seen:
            name = f"{name}'"
        seen.add(name)
        runs.append(load_run(d, name, bootstrap=bootstrap))
    return runs


# --------------------------------------------------------------------------- tables


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(metrics: dict[str, Any], key: str) -> str:
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
                _ci(m, "miou_ci"),
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
        f"{_ci(m, 'miou_ci')} cIoU={fmt(m.get('ciou'))} Pr@0.5={fmt(m.get('pr@0.5'))} "
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


# --------------------------------------------------------------------------- figures


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def fig_iou_hist(runs: Sequence[RunView], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 21)
    for r in runs[:8]:
        ax.hist(r.ious, bins=bins, histtype="step", linewidth=1.5, label=r.name)
    ax.set(xlabel="IoU", ylabel="examples", title="IoU distribution")
    ax.legend(fontsize=7)
    return _save(fig, path)


def fig_miou_vs_iter(runs: Sequence[RunView], path: Path) -> Path | None:
    clean = [
        r
        for r in runs
        if r.label.get("perturb", "clean") == "clean" and r.summary["metrics"].get("miou") is not None
    ]
    series: dict[str, dict[int, float]] = {}
    oneshot = next((r for r in clean if r.label.get("controller") == "oneshot"), None)
    for r in clean:
        if r.label.get("controller") == "loop":
            series.setdefault(f"loop ({r.label.get('refiner')})", {})[int(r.label.get("max_iter") or 0)] = (
                r.summary["metrics"]["miou"]
            )
    if not any(len(s) + (oneshot is not None) >= 2 for s in series.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for name, pts in series.items():
        if oneshot is not None:
            pts = {0: oneshot.summary["metrics"]["miou"], **pts}
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=name)
    ax.set(xlabel="max_iter (0 = one-shot)", ylabel="mIoU", title="mIoU vs max_iter")
    ax.set_xticks(sorted({x for s in series.values() for x in s} | ({0} if oneshot else set())))
    ax.legend(fontsize=8)
    return _save(fig, path)


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, groups)
    ax.legend(fontsize=7)


def fig_reliability(runs: Sequence[RunView], path: Path) -> Path | None:
    table = reliability_table(runs)
    if table is None:
        return None
    headers, rows = table
    fig = _figure()
    ax = fig.add_subplot()
    _grouped_bars(ax, headers[1:], {row[0]: [float(v) if v != "—" else 0.0 for v in row[1:]] for row in rows})
    ax.set(ylabel="mIoU", title="Reliability under perturbations")
    return _save(fig, path)


def fig_buckets(runs: Sequence[RunView], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    clean = [r for r in runs if r.label.get("perturb", "clean") == "clean"] or list(runs)
    series = {
        r.name: [r.summary["metrics"].get("buckets", {}).get(b, {}).get("miou") or 0.0 for b in BUCKETS]
        for r in clean[:8]
    }
    _grouped_bars(ax, list(BUCKETS), series)
    ax.set(ylabel="mIoU", title="mIoU by object size (COCO buckets)")
    return _save(fig, path)


def fig_cost(runs: Sequence[RunView], path: Path) -> Path:
    fig = _figure(max(6.4, 0.7 * len(runs) + 2), 4.0)
    ax = fig.add_subplot()
    tools = sorted({t for r in runs for t in r.summary["costs"]["tools"]})
    bottom = np.zeros(len(runs))
    for tool in tools:
        vals = np.array(
            [
                r.summary["costs"]["tools"].get(tool, {}).get("per_image", {}).get("seconds") or 0.0
                for r in runs
            ]
        )
        ax.bar(range(len(runs)), vals, bottom=bottom, label=tool)
        bottom += vals
    ax.set_xticks(range(len(runs)), [r.name for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="tool seconds per image", title="Cost breakdown")
    ax.legend(fontsize=7)
    return _save(fig, path)


def make_figures(out_dir: Path, runs: Sequence[RunView]) -> list[Path]:
    """Draw every figure that applies to these runs into ``out_dir/figures``."""
    figdir = out_dir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    made = [
        fig_iou_hist(runs, figdir / "iou_hist.png"),
        fig_miou_vs_iter(runs, figdir / "miou_vs_iter.png"),
        fig_reliability(runs, figdir / "reliability.png"),
        fig_buckets(runs, figdir / "size_buckets.png"),
        fig_cost(runs, figdir / "cost.png"),
    ]
    return [p for p in made if p is not None]


# --------------------------------------------------------------------------- markdown


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
