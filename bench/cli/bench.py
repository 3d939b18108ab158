"""``refseg bench run | suite | report | cases | chaos | engines | viewer | ground | speed |
datasets | schema``.

This module creates the ``bench`` command and its subcommands; ``suite``, ``chaos``, ``speed``
and the benchmark commands are declared in their own modules. Errors the project raises on purpose
propagate (the CLI prints them in one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.cli.args import (
    add_data_flags,
    add_episode_flags,
    add_run_flags,
    data_spec,
    episode_options,
    print_unfinished,
    run_options,
)
from bench.cli.help import show_default
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.options import BenchOptions, DataSpec
from bench.perturb import PERTURBATIONS
from bench.report.paired import DEFAULT_TOLERANCE


def add_parser(subparsers: Any) -> None:
    """Register ``bench`` and its subcommands on the ``refseg`` subparsers."""
    from bench.cli.benchmarks import add_parsers as add_benchmark_parsers
    from bench.cli.chaos import add_parser as add_chaos_parser
    from bench.cli.datasets import add_parsers as add_dataset_parsers
    from bench.cli.frontier import add_parser as add_frontier_parser
    from bench.cli.scale import add_parser as add_scale_parser
    from bench.cli.speed import add_parser as add_speed_parser
    from bench.cli.suite import add_parser as add_suite_parser

    bench = subparsers.add_parser(
        "bench", help="evaluate on a data set (RefCOCO-M, generated scenes, plugins); reports"
    )
    sub = bench.add_subparsers(dest="bench_command", required=True)
    _add_run(sub)
    add_suite_parser(sub)
    _add_report(sub)
    _add_cases(sub)
    add_chaos_parser(sub)
    add_benchmark_parsers(sub)
    add_speed_parser(sub)
    add_scale_parser(sub)
    add_dataset_parsers(sub)
    add_frontier_parser(sub)


def _add_run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run (or resume) one benchmark into a run folder",
        description="Run one configuration over a data set; the same --out resumes.",
    )
    add_data_flags(run)
    run.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    perturb = run.add_argument(
        "--perturb", choices=PERTURBATIONS, default=None, help="image perturbation (robustness runs)"
    )
    show_default(perturb, DataSpec, "perturb")
    add_run_flags(run)
    add_episode_flags(run)
    run.set_defaults(func=cmd_run)


def _add_report(sub: Any) -> None:
    report = sub.add_parser("report", help="markdown report and figures for one or more runs")
    report.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run folders; the first is the baseline the others are compared with, paired",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: the run folder for one run, else ./report)",
    )
    report.add_argument("--title", default=None, help="the report's title (default: refseg bench report)")
    report.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="B",
        help="recompute summaries with B bootstrap resamples (default: each run's summary.json as "
        f"written; the paired comparisons use {DEFAULT_BOOTSTRAP})",
    )
    report.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"paired comparison: |IoU difference| counted as unchanged (default {DEFAULT_TOLERANCE})",
    )
    report.set_defaults(func=cmd_report)


def _add_cases(sub: Any) -> None:
    cases = sub.add_parser("cases", help="galleries of improved / degraded / unchanged examples")
    cases.add_argument("run_a", type=Path, metavar="RUN_A", help="the baseline run folder")
    cases.add_argument("run_b", type=Path, metavar="RUN_B", help="the run folder compared with RUN_A")
    cases.add_argument("--out", type=Path, default=None, help="default: RUN_B/cases")
    cases.add_argument("--k", type=int, default=6, help="examples per category (default 6)")
    cases.add_argument(
        "--tolerance",
        "--eps",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"|IoU difference| counted as unchanged (default {DEFAULT_TOLERANCE}; as in bench report)",
    )
    cases.set_defaults(func=cmd_cases)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.report.markdown import print_summary
    from bench.runner import run_bench_sync

    options = BenchOptions(
        out=args.out,
        episode=episode_options(args),
        data=data_spec(args),
        run=run_options(args),
    )
    result = run_bench_sync(options)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print_summary(args.out.name or str(args.out), result.summary)
    print(f"ran {result.ran} example(s), skipped {result.skipped} already done; files in {args.out}")
    print(f"report: {args.out / 'report.md'}")
    print_unfinished(
        result.missing,
        result.failed,
        f"(see {args.out / 'samples.jsonl'}; --retry-failed redoes them)",
    )
    if result.fallback_problem is not None:
        print(f"refseg: error: {result.fallback_problem}", file=sys.stderr)
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from bench.frontier.report import guard_sections
    from bench.report.markdown import paired_against, print_pairs, print_table, write_report
    from bench.report.run_reader import load_runs

    runs = load_runs(args.runs, bootstrap=args.bootstrap)
    for run in runs:
        for note in run.notes:
            print(f"note: {run.name}: {note}", file=sys.stderr)
    out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("report"))
    boot = DEFAULT_BOOTSTRAP if args.bootstrap is None else args.bootstrap
    pairs = paired_against(runs, runs[0], B=boot, tolerance=args.tolerance) if len(runs) > 1 else []
    guard = guard_sections(out, [(r.name, r.run_dir) for r in runs])  # calibration; frontier at 1/1
    path = write_report(out, runs, title=args.title or "refseg bench report", pairs=pairs, extra=guard)
    print_table(runs)
    print_pairs(pairs)
    print(f"report: {path}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    from bench.report.cases import totals_line, write_cases

    out = args.out or args.run_b / "cases"
    picked = write_cases(args.run_a, args.run_b, out, k=args.k, tolerance=args.tolerance)
    print(f"{args.run_b.name} vs {args.run_a.name}: {totals_line(picked['totals'], picked, args.tolerance)}")
    print(f"galleries: {out}")
    return 0
