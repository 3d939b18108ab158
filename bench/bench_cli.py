"""``refseg bench run | suite | report | cases``.

:func:`add_bench_parsers` adds the ``bench`` command (with these subcommands) to the
``refseg`` subparsers; other modules add more ``bench`` subcommands through
:func:`bench_subparsers`. Each command returns an exit code; errors the project raises on
purpose propagate (the CLI prints them in one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli_speed import add_speed_parser
from bench.options import add_episode_options, build_runtime
from bench.perturb import PERTURBATIONS

if TYPE_CHECKING:
    from bench.runner import DataSpec, RunOptions

_BENCH_SUB: dict[int, Any] = {}


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Which examples: data set, split, subset."""
    d = p.add_argument_group("data")
    d.add_argument(
        "--dataset",
        default="moondream/refcoco-m",
        help="hub name, a local parquet file or folder, or 'synthetic' (generated scenes)",
    )
    d.add_argument("--split", default="validation", help="hub split (default: validation)")
    d.add_argument(
        "--n", type=int, default=None, help="number of images (default: all; synthetic: 20 scenes)"
    )
    d.add_argument(
        "--per-image",
        choices=["all", "first"],
        default="all",
        help="evaluate all expressions of an image, or only the first",
    )
    d.add_argument(
        "--seed-subset",
        type=int,
        default=None,
        help="take a random --n images with this seed (default: the first --n)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How the run goes (none of these change results)."""
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=4, help="examples in flight (default 4)")
    r.add_argument("--retry-failed", action="store_true", help="redo examples that failed last time")
    r.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="B",
        help="bootstrap resamples for 95%% CIs (0 = none; default 2000)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--limit", type=int, default=None, help="run at most this many new examples now; run again to resume"
    )


def data_spec(args: argparse.Namespace, perturb: str = "clean") -> DataSpec:
    """The options of :func:`add_data_options` as a :class:`bench.runner.DataSpec`."""
    from bench.runner import DataSpec

    return DataSpec(args.dataset, args.split, args.n, args.per_image, args.seed_subset, perturb)


def run_options(args: argparse.Namespace, **overrides: Any) -> RunOptions:
    """The options of :func:`add_run_options` as :class:`bench.runner.RunOptions`."""
    from bench.runner import RunOptions

    fields = ("concurrency", "retry_failed", "bootstrap", "quiet", "limit")
    return RunOptions(**{**{f: getattr(args, f) for f in fields}, **overrides})


def print_unfinished(missing: int, failed: int, failed_note: str) -> None:
    """Tell (on stderr) what a resume would do: examples not run yet, failed ones."""
    if missing:
        print(f"{missing} example(s) not run yet: run the same command again to resume", file=sys.stderr)
    if failed:
        print(f"{failed} example(s) failed {failed_note}", file=sys.stderr)


def bench_subparsers(subparsers: Any) -> Any:
    """The ``bench`` command's subparsers (created by :func:`add_bench_parsers`)."""
    return _BENCH_SUB[id(subparsers)]


def add_bench_parsers(subparsers: Any) -> None:
    """Register ``bench run``, ``bench suite``, ``bench report`` and ``bench cases``.

    Args:
        subparsers: the ``refseg`` top-level subparsers object; a ``bench`` command is added
            to it. Get the ``bench`` subparsers (to add more) with :func:`bench_subparsers`.
    """
    bench = subparsers.add_parser("bench", help="evaluate on RefCOCO-M or generated scenes; reports")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    _BENCH_SUB[id(subparsers)] = sub

    run = sub.add_parser(
        "run",
        help="run (or resume) one benchmark into a run folder",
        description="Run one configuration over a data set; the same --out resumes.",
    )
    add_data_options(run)
    run.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    run.add_argument(
        "--perturb", choices=PERTURBATIONS, default="clean", help="image perturbation (robustness runs)"
    )
    add_run_options(run)
    add_episode_options(run)
    run.set_defaults(func=cmd_run)

    from bench.suite import add_suite_options

    suite = sub.add_parser("suite", help="the original project's whole table (resumable sub-runs)")
    add_data_options(suite)
    suite.add_argument("--out", type=Path, required=True, metavar="DIR", help="suite folder")
    add_suite_options(suite)
    add_run_options(suite)
    add_episode_options(suite)
    # The suite chooses the refiner itself (vlm when configured, else rules) unless told.
    suite.set_defaults(refiner=None, func=cmd_suite)

    report = sub.add_parser("report", help="markdown report and figures for one or more runs")
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: the run folder for one run, else ./report)",
    )
    report.add_argument("--title", default=None)
    report.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="B",
        help="recompute summaries with B bootstrap resamples",
    )
    report.set_defaults(func=cmd_report)

    cases = sub.add_parser("cases", help="galleries of improved / degraded / unchanged examples")
    cases.add_argument("run_a", type=Path, metavar="RUN_A")
    cases.add_argument("run_b", type=Path, metavar="RUN_B")
    cases.add_argument("--out", type=Path, default=None, help="default: RUN_B/cases")
    cases.add_argument("--k", type=int, default=6, help="examples per category (default 6)")
    cases.add_argument("--eps", type=float, default=0.01, help="|IoU difference| counted as unchanged")
    cases.set_defaults(func=cmd_cases)

    add_speed_parser(sub)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.report import print_summary
    from bench.runner import run_bench_sync

    spec = data_spec(args, args.perturb)
    examples = spec.load()
    rt = build_runtime(args)
    try:
        result = run_bench_sync(rt, examples, args.out, spec, run_options(args))
    finally:
        rt.close()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print_summary(args.out.name or str(args.out), result.summary)
    print(f"ran {result.ran} example(s), skipped {result.skipped} already done; files in {args.out}")
    print_unfinished(
        result.missing,
        result.failed,
        f"(see {args.out / 'samples.jsonl'}; --retry-failed redoes them)",
    )
    return result.exit_code


def cmd_suite(args: argparse.Namespace) -> int:
    from bench.suite import run_suite_from_args

    return run_suite_from_args(args)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import load_runs, print_table, write_report

    runs = load_runs(args.runs, bootstrap=args.bootstrap)
    out = args.out or (args.runs[0] if len(args.runs) == 1 else Path("report"))
    path = write_report(out, runs, title=args.title or "refseg bench report")
    print_table(runs)
    print(f"report: {path}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    from bench.cases import write_cases

    out = args.out or args.run_b / "cases"
    picked = write_cases(args.run_a, args.run_b, out, k=args.k, eps=args.eps)
    print(json.dumps({cat: len(rows) for cat, rows in picked.items()}))
    print(f"galleries: {out}")
    return 0
