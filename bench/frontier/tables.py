"""The frontier and the calibration as tables (terminal and markdown share them)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.frontier.calibration import Calibration
from bench.frontier.frontier import Frontier
from bench.frontier.points import FrontierPoint
from bench.report.tables import fmt

Table = tuple[list[str], list[list[str]]]


def _ci(point: FrontierPoint) -> str:
    return "—" if point.ci is None else f"[{point.ci[0]:.3f}, {point.ci[1]:.3f}]"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _stops(point: FrontierPoint) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(point.stops.items(), key=lambda kv: -kv[1]))


def point_row(point: FrontierPoint, what: str) -> list[str]:
    return [
        what,
        f"{point.tau_conf:g}",
        f"{point.tau_gap:g}",
        fmt(point.value),
        _ci(point),
        fmt(point.vlm_calls_per_1k, 1),
        fmt(point.asks_per_1k, 1),
        fmt(point.tokens_per_1k, 0),
        fmt(point.usd_per_1k, 4),
        _pct(point.asked_fraction),
        _pct(point.escalated_fraction),
        _stops(point),
    ]


def point_headers(f: Frontier) -> list[str]:
    return [
        "point",
        "tau_conf",
        "tau_gap",
        f.headline_label,
        "95% CI",
        "VLM calls / 1k",
        "refiner+VLM calls / 1k",
        "tokens / 1k",
        "USD / 1k",
        "asked VLM",
        "asked for help",
        "stop reasons",
    ]


def pareto_table(f: Frontier) -> Table:
    """The ends, the marks and the Pareto-optimal points, cheapest first."""
    rows = [point_row(f.one_shot, "one-shot"), point_row(f.always_ask, "always asks")]
    rows += [point_row(p, m.label) for m, p in f.marks]
    for p in f.pareto():
        same = f" (+{len(p.same_as)} same)" if p.same_as else ""
        rows.append(point_row(p, "Pareto" + same))
    return point_headers(f), rows


def warm_start_table(f: Frontier) -> Table:
    """``agent``: what its warm-start guard decides at the ends, the marks and a coarse grid."""
    headers = ["point", "tau_conf", "tau_gap", "settled by the warm start", f"{f.headline_label} of those"]
    picked = [("one-shot", f.one_shot), ("always asks", f.always_ask)]
    picked += [(m.label, p) for m, p in f.marks]
    picked += [
        ("", p) for p in f.points if p.tau_gap == 0.0 and abs(p.tau_conf * 10 - round(p.tau_conf * 10)) < 1e-9
    ]
    rows = [
        [what, f"{p.tau_conf:g}", f"{p.tau_gap:g}", f"{p.settled}/{p.n}", fmt(p.settled_value)]
        for what, p in picked
    ]
    return headers, rows


def frontier_table(f: Frontier) -> Table:
    return pareto_table(f) if f.exact else warm_start_table(f)


def calibration_table(cals: Sequence[Calibration]) -> Table:
    """Per ranker: rankings, expressions, how often top-1 is right, mean conf, ECE of conf and gap."""
    headers = [
        "ranker",
        "rankings",
        "expressions",
        "top-1 right",
        "mean conf",
        "ECE (conf)",
        "ECE (gap)",
        "runs",
    ]
    rows = []
    for c in cals:
        conf, gap = c.reliability("conf"), c.reliability("gap")
        rows.append(
            [
                c.ranker,
                str(c.n),
                str(len(c.expressions)),
                fmt(conf.accuracy),
                fmt(conf.mean),
                fmt(conf.ece),
                fmt(gap.ece),
                ", ".join(c.runs),
            ]
        )
    return headers, rows
