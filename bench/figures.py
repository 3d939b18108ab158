"""The report's figures, drawn on matplotlib ``Figure`` objects with the Agg canvas.

No pyplot, no GUI backend, no global state: reports render on headless machines and in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import BUCKETS
from bench.run_view import RunView
from bench.tables import reliability_table


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
