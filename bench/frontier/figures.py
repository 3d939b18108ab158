"""``frontier.png`` and ``calibration.png``, drawn by the report's renderer (Agg, no pyplot)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.frontier.calibration import Calibration
from bench.frontier.frontier import COST_LABELS, Frontier
from bench.report.figures import new_figure, save_figure

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


def _draw_one(ax: Any, f: Frontier, colour: str, show_ends: bool) -> None:
    axis = f.cost_axis
    known = [p for p in f.points if p.value is not None]
    ax.scatter(
        [p.cost(axis) for p in known],
        [p.value for p in known],
        s=8,
        color=colour,
        alpha=0.25,
        label=f"{f.name}: every threshold pair ({len(f.points)})",
    )
    front = f.pareto()
    if front:
        xs, ys = [p.cost(axis) for p in front], [p.value or 0.0 for p in front]
        lo = [y - p.ci[0] if p.ci else 0.0 for p, y in zip(front, ys, strict=True)]
        hi = [p.ci[1] - y if p.ci else 0.0 for p, y in zip(front, ys, strict=True)]
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            color=colour,
            drawstyle="steps-post",
            marker="o",
            ms=4,
            capsize=2,
            linewidth=1.5,
            label=f"{f.name}: Pareto front (95% CI)",
        )
    ends = [(f.always_ask, "^", f"{f.name}: always asks (1/1)")]
    if show_ends:  # the same for every source of one ranker: drawn once
        ends.insert(0, (f.one_shot, "s", "one-shot (never asks: 0/0)"))
    for point, marker, label in ends:
        if point.value is not None:
            ax.scatter(
                [point.cost(axis)],
                [point.value],
                marker=marker,
                s=70,
                color=colour,
                edgecolor="black",
                zorder=5,
                label=label,
            )
    for mark, point in f.marks:
        if point.value is not None:
            ax.scatter(
                [point.cost(axis)],
                [point.value],
                marker="*",
                s=180,
                color="gold",
                edgecolor=colour,
                linewidth=1.5,
                zorder=6,
                label=f"{f.name}: {mark.label} {mark.tau_conf:g}/{mark.tau_gap:g}",
            )
    for m in f.measured:
        if m.value is not None and axis in m.costs:
            ax.scatter(
                [m.costs[axis]],
                [m.value],
                marker="x",
                s=70,
                color="black",
                zorder=7,
                label=f"{m.label} (a real run, measured)",
            )


def frontier_figure(frontiers: Sequence[Frontier]) -> Any:
    """The headline metric against the cost of asking, one panel per cost axis."""
    axes_used = list(dict.fromkeys(f.cost_axis for f in frontiers))
    fig = new_figure(9.6 * len(axes_used), 4.8)
    for i, axis in enumerate(axes_used):
        ax = fig.add_subplot(1, len(axes_used), i + 1)
        these = [f for f in frontiers if f.cost_axis == axis]
        for j, f in enumerate(these):
            _draw_one(ax, f, _COLOURS[(i + j) % len(_COLOURS)], show_ends=j == 0)
        label = these[0].headline_label
        n = these[0].n_expressions
        ax.set(
            xlabel=COST_LABELS[axis],
            ylabel=label,
            title=f"{label} vs the cost of asking, by guard thresholds ({n} expressions)",
        )
        if axis == "asks":
            ax.text(
                0.02,
                0.02,
                "no VLM in this run: the cost is the refiner's calls ($0)",
                transform=ax.transAxes,
                fontsize=7,
                color="dimgray",
            )
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(alpha=0.3)
    return fig


def fig_frontier(frontiers: Sequence[Frontier], path: Path) -> Path:
    return save_figure(frontier_figure(frontiers), path)


def _reliability_panel(ax: Any, cal: Calibration, score: str) -> None:
    rel = cal.reliability(score)
    width = rel.bins[0].hi - rel.bins[0].lo if rel.bins else 0.1
    centres = [(b.lo + b.hi) / 2 for b in rel.bins]
    ax.bar(
        centres,
        [b.accuracy or 0.0 for b in rel.bins],
        width=width * 0.9,
        color="tab:blue",
        alpha=0.7,
        label="top-1 right (IoU >= 0.5)",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="calibrated")
    for c, b in zip(centres, rel.bins, strict=True):
        if b.n:
            ax.text(c, 0.02, str(b.n), ha="center", va="bottom", fontsize=6, rotation=90)
    ece = "n/a" if rel.ece is None else f"{rel.ece:.3f}"
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel=f"{score} (top-1 {'probability' if score == 'conf' else 'minus top-2'})",
        ylabel="fraction right",
        title=f"{cal.ranker}: {score}, ECE {ece} ({cal.n} rankings)",
    )
    ax.legend(fontsize=6, loc="upper left")


def calibration_figure(calibrations: Sequence[Calibration]) -> Any:
    """A reliability diagram of ``conf`` and of ``gap`` per ranker (a row each); the numbers
    in the bars are the rankings in each bin."""
    fig = new_figure(10.0, 4.0 * len(calibrations))
    for row, cal in enumerate(calibrations):
        for col, score in enumerate(("conf", "gap")):
            _reliability_panel(fig.add_subplot(len(calibrations), 2, 2 * row + col + 1), cal, score)
    return fig


def fig_calibration(calibrations: Sequence[Calibration], path: Path) -> Path:
    return save_figure(calibration_figure(calibrations), path)
