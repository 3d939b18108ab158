"""The report's figures, drawn on matplotlib ``Figure`` objects with the Agg canvas.

No pyplot, no GUI backend, no global state: reports render on headless machines and in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.controllers import ControllerSpec, get_controller
from bench.metrics import BUCKETS
from bench.report.run_reader import RunView
from bench.report.tables import headline_of, reliability_table
from tools.errors import ConfigError


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


# The renderer's entry points for figures drawn elsewhere (bench.frontier.figures).
new_figure = _figure
save_figure = _save


def _line_style(i: int) -> dict[str, Any]:
    """A distinct colour and dash for the ``i``-th run: 20 colours, then the next dash style."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "linestyle": ("-", "--", ":", "-.")[i // 20 % 4]}


def fig_iou_hist(runs: Sequence[RunView], path: Path) -> Path:
    return _save(iou_hist_figure(runs), path)


def iou_hist_figure(runs: Sequence[RunView]) -> Any:
    """IoU histogram of every run (one step line each)."""
    fig = _figure(6.4, 4.0 + 0.1 * max(0, len(runs) - 8))
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 21)
    for i, r in enumerate(runs):
        ax.hist(r.ious, bins=bins, histtype="step", linewidth=1.5, label=r.name, **_line_style(i))
    ax.set(xlabel="IoU", ylabel="expressions", title=f"IoU distribution ({len(runs)} runs)")
    ax.legend(fontsize=6, ncol=2 if len(runs) > 8 else 1)
    return fig


def fig_miou_vs_iter(runs: Sequence[RunView], path: Path) -> Path | None:
    """The headline metric (mIoU, gIoU, ...) of the clean runs against ``max_iter``."""
    if not runs:
        return None
    key, label = headline_of(runs[0].summary.metrics)
    clean = [r for r in runs if r.label.perturb == "clean" and r.summary.metrics.value(key) is not None]
    series: dict[str, dict[int, float]] = {}
    oneshot = next((r for r in clean if _round_free(r)), None)  # the x = 0 point
    for r in clean:
        value = r.summary.metrics.value(key)
        if _on_max_iter_axis(r) and value is not None:
            asks = ", always asks" if r.label.always_asks else ""  # at thresholds 1/1
            name = f"{r.label.controller} ({r.label.refiner}{asks})"
            series.setdefault(name, {})[int(r.label.max_iter or 0)] = value
    if not any(len(s) + (oneshot is not None) >= 2 for s in series.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for name, pts in series.items():
        if oneshot is not None:
            pts = {0: oneshot.summary.metrics.value(key) or 0.0, **pts}
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=name)
    shown = sum(len(pts) for pts in series.values()) + (oneshot is not None)
    left_out = f"; {len(runs) - shown} perturbed or other runs not shown" if len(runs) > shown else ""
    zero = f"0 = {oneshot.label.controller}" if oneshot is not None else "no 0 point"
    ax.set(xlabel=f"max_iter ({zero})", ylabel=label, title=f"{label} vs max_iter (clean runs{left_out})")
    ax.set_xticks(sorted({x for s in series.values() for x in s} | ({0} if oneshot else set())))
    ax.legend(fontsize=8)
    return _save(fig, path)


def _spec(r: RunView) -> ControllerSpec | None:
    """The run's controller spec; ``None`` when it is not installed here (then the run is
    neither a series nor the 0 point: what it does with ``max_iter`` cannot be told)."""
    try:
        return get_controller(str(r.label.controller))
    except ConfigError:
        return None


def _on_max_iter_axis(r: RunView) -> bool:
    """Its spec's method label changes with ``max_iter`` (``loop(rules) x3``): its runs vary along it."""
    spec, label = _spec(r), r.label.model_dump()
    return spec is not None and spec.method_label({**label, "max_iter": 1}) != spec.method_label(
        {**label, "max_iter": 2}
    )


def _round_free(r: RunView) -> bool:
    """It proposes and ranks only (no refiner, VLM or prompt tool): the 0 rounds point."""
    spec = _spec(r)
    return spec is not None and not spec.refines and spec.vlm == "none" and spec.prompt_tool == "none"


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float]]) -> list[np.ndarray]:
    """Bars per group and series; returns each series' bar positions."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    positions = []
    for i, (name, values) in enumerate(series.items()):
        at = x + (i - (len(series) - 1) / 2) * width
        ax.bar(at, values, width, label=name)
        positions.append(at)
    ax.set_xticks(x, groups)
    ax.legend(fontsize=6, ncol=2 if len(series) > 8 else 1)
    return positions


def fig_reliability(runs: Sequence[RunView], path: Path) -> Path | None:
    table = reliability_table(runs)
    if table is None:
        return None
    headers, rows = table
    fig = _figure()
    ax = fig.add_subplot()
    _grouped_bars(ax, headers[1:], {row[0]: [float(v) if v != "—" else 0.0 for v in row[1:]] for row in rows})
    label = headline_of(runs[0].summary.metrics)[1]
    ax.set(ylabel=label, title="Reliability: methods run under several perturbations")
    return _save(fig, path)


def fig_buckets(runs: Sequence[RunView], path: Path) -> Path | None:
    if not any("size" in r.summary.metrics.breakdowns for r in runs):
        return None  # a protocol without the size breakdown
    return _save(buckets_figure(runs), path)


def size_metric(runs: Sequence[RunView]) -> tuple[str, str]:
    """``(key, label)`` of the metric the size breakdown holds: the headline when it is there
    (mIoU, gIoU), else its first."""
    key, label = headline_of(runs[0].summary.metrics) if runs else ("miou", "mIoU")
    found = [
        m
        for r in runs
        for g in r.summary.metrics.breakdowns.get("size", {}).values()
        for m in g.model_extra or {}
    ]
    return (key, label) if key in found or not found else (found[0], found[0])


def _bucket(r: RunView, k: str, key: str = "miou") -> tuple[float, int]:
    """The metric ``key`` and count of size bucket ``k`` in a run (0, 0 when it has none)."""
    stat = r.summary.metrics.breakdowns.get("size", {}).get(k)
    return (stat.value(key) or 0.0, stat.n) if stat is not None else (0.0, 0)


def buckets_figure(runs: Sequence[RunView]) -> Any:
    """The size breakdown's metric (mIoU, gIoU) per COCO size bucket of every clean run (all
    runs when none is clean); a bucket with no expression is labelled n=0 instead of showing
    an empty gap."""
    clean = [r for r in runs if r.label.perturb == "clean"] or list(runs)
    key, label = size_metric(clean)
    fig = _figure(max(6.4, 0.35 * len(clean) * len(BUCKETS) + 2), 4.0)
    ax = fig.add_subplot()
    series = {r.name: [_bucket(r, k, key)[0] for k in BUCKETS] for r in clean}
    ns = {k: {_bucket(r, k, key)[1] for r in clean} for k in BUCKETS}
    groups = [f"{k} (n={ns[k].pop()})" if len(ns[k]) == 1 else k for k in BUCKETS]
    positions = _grouped_bars(ax, groups, series)
    for at, r in zip(positions, clean, strict=True):
        for x, k in zip(at, BUCKETS, strict=True):
            if not _bucket(r, k, key)[1]:
                ax.text(x, 0.01, "n=0", rotation=90, ha="center", va="bottom", fontsize=6)
    left_out = len(runs) - len(clean)
    note = f"; {left_out} perturbed run(s) in the reliability figure" if left_out else ""
    ax.set(ylabel=label, title=f"{label} by object size (COCO buckets){note}")
    return fig


def _stacked(ax: Any, runs: Sequence[RunView], keys: tuple[str, ...], title: str, ylabel: str) -> None:
    """Bars per run of the per-image cost fields ``keys`` (summed), stacked by tool."""
    tools = sorted({t for r in runs for t in r.summary.costs.tools})
    bottom = np.zeros(len(runs))
    for tool in tools:
        per = [row.per_image if (row := r.summary.costs.tools.get(tool)) is not None else {} for r in runs]
        vals = np.array([sum(p.get(k) or 0.0 for k in keys) for p in per])
        ax.bar(range(len(runs)), vals, bottom=bottom, label=tool)
        bottom += vals
    ax.set_xticks(range(len(runs)), [r.name for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=6)


def fig_cost(runs: Sequence[RunView], path: Path) -> Path:
    """Per run, stacked by tool: cold seconds per image (from an empty cache: comparable
    whatever order the runs ran in), spent seconds per image, and cold VLM tokens per image
    when any run used the VLM."""
    tokens = any((r.summary.costs.total.per_image.get("cold_tokens_in") or 0) > 0 for r in runs)
    panels = 3 if tokens else 2
    fig = _figure(max(6.4, 0.7 * len(runs) + 2) * panels / 1.5, 4.2)
    _stacked(
        fig.add_subplot(1, panels, 1), runs, ("cold_seconds",), "cold cost (empty cache)", "tool s / image"
    )
    _stacked(fig.add_subplot(1, panels, 2), runs, ("seconds",), "spent by this run", "compute s / image")
    if tokens:
        _stacked(
            fig.add_subplot(1, panels, 3),
            runs,
            ("cold_tokens_in", "cold_tokens_out"),
            "cold VLM tokens",
            "tokens / image",
        )
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
