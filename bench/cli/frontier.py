"""``refseg bench frontier RUN``: every guard threshold replayed from a run at 1/1."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.args import default
from bench.frontier.grid import DEFAULT_STEP
from bench.frontier.options import FrontierOptions
from tools.errors import InputError


def add_parser(sub: Any) -> None:
    """Register ``frontier`` on the ``bench`` subparsers."""
    p = sub.add_parser(
        "frontier",
        help="the cost-quality frontier: every guard threshold replayed from a run at 1/1",
        description="Replay the guard (conf >= tau_conf and gap >= tau_gap) of a loop or ground run "
        "made at --tau-conf 1 --tau-gap 1 at every threshold pair of a grid: the protocol's headline "
        "metric with its 95% CI (bootstrap over images), VLM calls, tokens and USD per 1,000 "
        "expressions and the fraction that asked; prints the Pareto-optimal points and the guard's "
        "calibration, writes frontier.png, calibration.png and frontier.json. An agent run gives "
        "only its warm-start guard decision.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="a run folder made at --tau-conf 1 --tau-gap 1")
    p.add_argument(
        "--grid",
        default=None,
        metavar="STEP|C1,C2:G1,G2",
        help=f"threshold grid: a step on both axes, or each axis's values (default step {DEFAULT_STEP}; "
        "0 and 1 are always on it)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where the JSON with every grid point goes (default OUT/frontier.json)",
    )
    p.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="folder of the figures (default: RUN)"
    )
    tc, tg = default(FrontierOptions, "mark")
    p.add_argument(
        "--mark",
        default=None,
        metavar="TAU_CONF,TAU_GAP",
        help=f"threshold pair marked on the figure (default {tc:g},{tg:g}: a run's default thresholds)",
    )
    boot = default(FrontierOptions, "bootstrap")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="B",
        help=f"bootstrap resamples of each point's CI (default {boot}; 0: none)",
    )
    p.set_defaults(func=cmd_frontier)
    _add_check(sub)


def _add_check(sub: Any) -> None:
    from bench.benchmarks.frontier_check_setups import DEFAULT_PAIRS, SETUPS

    pairs = " ".join(f"{c:g},{g:g}" for c, g in DEFAULT_PAIRS)
    p = sub.add_parser(
        "frontier-check",
        help="the frontier's replay against real runs at several thresholds (scripted VLMs, offline)",
        description="On generated scenes with the offline toolset, run loop (rules refiner), loop "
        "(a scripted VLM refiner over real HTTP) and ground (a jittered oracle box VLM) at "
        "thresholds 1/1 and at each pair, and compare the replay with every real run, example by "
        "example and in total. Exit 1 when anything differs.",
    )
    p.add_argument("--n", type=int, default=None, help="generated scenes, ~18 expressions each (default 3)")
    p.add_argument(
        "--pairs",
        nargs="+",
        default=None,
        metavar="TAU_CONF,TAU_GAP",
        help=f"pairs checked (default {pairs})",
    )
    p.add_argument(
        "--setups", default=None, help=f"comma-separated subset of {', '.join(SETUPS)} (default: all)"
    )
    p.add_argument("--out", type=Path, default=None, help="folder of the runs (default: a temp folder)")
    p.set_defaults(func=cmd_frontier_check)


def _mark(text: str) -> tuple[float, float]:
    try:
        tc, tg = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"a threshold pair is TAU_CONF,TAU_GAP (e.g. 0.5,0.2), got {text!r}") from None
    if not (0.0 <= tc <= 1.0 and 0.0 <= tg <= 1.0):
        raise InputError(f"thresholds lie in [0, 1], got {text!r}")
    return tc, tg


def frontier_options(args: argparse.Namespace) -> FrontierOptions:
    """The ``bench frontier`` namespace as :class:`FrontierOptions`."""
    from bench.frontier.grid import Grid

    given: dict[str, Any] = {"grid": Grid.parse(args.grid)}
    if args.mark is not None:
        given["mark"] = _mark(args.mark)
    if args.bootstrap is not None:
        given["bootstrap"] = args.bootstrap
    return FrontierOptions(run_dir=args.run, out=args.out, json_path=args.json, **given)


def cmd_frontier(args: argparse.Namespace) -> int:
    from bench.frontier.report import run_frontier
    from bench.frontier.tables import calibration_table, frontier_table
    from bench.report.tables import text_table

    out = run_frontier(frontier_options(args))
    for f in out.frontiers:
        for note in f.notes:
            print(f"note: {note}")
        print(
            f"{f.name}: {f.controller}, {f.n_expressions} expressions on {f.n_images} images, "
            f"{f.grid.describe()}; cost axis: {f.cost_label}"
        )
        print(text_table(*frontier_table(f)))
    if out.calibrations:
        print("guard calibration (top-1 right: IoU >= 0.5):")
        print(text_table(*calibration_table(out.calibrations)))
    for path in out.files:
        print(f"wrote {path}")
    return 0


def cmd_frontier_check(args: argparse.Namespace) -> int:
    from bench.benchmarks.frontier_check import DEFAULT_PAIRS, SETUPS, check_table, run_frontier_check

    setups = tuple(s.strip() for s in (args.setups or ",".join(SETUPS)).split(",") if s.strip())
    unknown = [s for s in setups if s not in SETUPS]
    if unknown:
        raise InputError(f"--setups: unknown {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
    n = 3 if args.n is None else args.n
    if n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    pairs = tuple(_mark(p) for p in args.pairs) if args.pairs else DEFAULT_PAIRS
    rows = run_frontier_check(n, pairs, setups, args.out)
    print(check_table(rows))
    for row in rows:
        for line in row.mismatches[:5]:
            print(f"differs: {row.setup} at {row.tau_conf:g}/{row.tau_gap:g}: {line}")
    same = all(r.same for r in rows)
    print("replay == real runs: " + ("yes, every pair and example" if same else "NO"))
    return 0 if same else 1
