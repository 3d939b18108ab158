"""``refseg bench suite``: the original project's whole table (resumable sub-runs)."""

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
    default,
    episode_options,
    print_unfinished,
    run_options,
)
from bench.cli.help import show_default
from bench.frontier.options import PickOptions
from bench.perturb import PERTURBATIONS
from bench.suite_options import EXPERIMENTS, SuiteOptions
from tools.errors import ConfigError, VLMError


def add_parser(sub: Any) -> None:
    suite = sub.add_parser("suite", help="the original project's whole table (resumable sub-runs)")
    add_data_flags(suite)
    suite.add_argument("--out", type=Path, required=True, metavar="DIR", help="suite folder")
    s = suite.add_argument_group("suite (each sub-run sets its own controller and max_iter)")
    s.add_argument(
        "--experiments",
        default=None,
        metavar="NAME,...",
        help=f"comma-separated subset of {', '.join(EXPERIMENTS)}, sam3 (default: all but sam3; "
        "--toolset sam3 adds sam3 and runs the others on SAM 1)",
    )
    iters = s.add_argument(
        "--max-iters",
        default=None,
        metavar="N,...",
        help="comma-separated integers: the loop's max_iter of each run of the main table, e.g. 1,2",
    )
    perturbations = s.add_argument(
        "--perturbations",
        default=None,
        metavar="NAME,...",
        help="comma-separated perturbations of the reliability experiment, of "
        f"{', '.join(p for p in PERTURBATIONS if p != 'clean')}",
    )
    show_default(iters, SuiteOptions, "max_iters")
    show_default(perturbations, SuiteOptions, "perturbations")
    _add_pick_flags(suite)
    add_run_flags(suite)
    # The suite chooses the refiner itself (vlm when configured, else rules) unless told;
    # --controller and --max-iter are set per sub-run: not offered (refused with a hint if given).
    add_episode_flags(suite, hidden=("controller", "max_iter"))
    suite.set_defaults(func=cmd_suite)


def _add_pick_flags(suite: Any) -> None:
    p = suite.add_argument_group(
        "picking the guard's thresholds (--pick-thresholds: chosen on some images, scored on the others)"
    )
    p.add_argument(
        "--pick-thresholds",
        action="store_true",
        default=None,
        help="choose tau_conf/tau_gap from the frontier of the always-ask run on held-out images "
        "(or --pick-split) by --max-usd-per-1k or --target-metric, and report them on the other "
        "images only (default: off)",
    )
    p.add_argument(
        "--pick-fraction",
        type=float,
        default=None,
        metavar="F",
        help=f"fraction of the images that choose, drawn by a digest of each image id (default "
        f"{default(PickOptions, 'fraction')})",
    )
    p.add_argument(
        "--pick-split",
        default=None,
        metavar="SPLIT",
        help="choose on this split of the data set instead (default: a held-out fraction of the images)",
    )
    p.add_argument(
        "--max-usd-per-1k",
        type=float,
        default=None,
        metavar="USD",
        help="price cap: the best metric at most this many USD per 1,000 expressions (default: none)",
    )
    p.add_argument(
        "--target-metric",
        type=float,
        default=None,
        metavar="VALUE",
        help="target: the cheapest thresholds whose headline metric reaches VALUE (default: none)",
    )


def pick_options(args: argparse.Namespace) -> PickOptions:
    """The ``--pick-*`` flags as :class:`bench.frontier.options.PickOptions`."""
    names = ("pick_fraction", "pick_split", "max_usd_per_1k", "target_metric")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if not args.pick_thresholds:
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise ConfigError(f"{flags} only apply with --pick-thresholds")
        return PickOptions()
    fields = {"pick_fraction": "fraction", "pick_split": "split", "max_usd_per_1k": "max_usd_per_1k"}
    fields["target_metric"] = "target"
    return PickOptions(enabled=True, **{fields[k]: v for k, v in given.items()})


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def suite_options(args: argparse.Namespace) -> SuiteOptions:
    """The ``bench suite`` namespace as :class:`bench.suite_options.SuiteOptions`."""
    for flag, value in (("--controller", args.controller), ("--max-iter", args.max_iter)):
        if value is not None:  # silently running something else would be worse
            raise ConfigError(
                f"bench suite sets {flag} per sub-run (oneshot, loop_iter1..N; see --max-iters); "
                f"drop {flag}, or use bench run for one configuration"
            )
    lists: dict[str, Any] = {}
    if args.experiments is not None:
        lists["experiments"] = _csv(args.experiments)
    if args.perturbations is not None:
        lists["perturbations"] = _csv(args.perturbations)
    if args.max_iters is not None:
        try:
            lists["max_iters"] = tuple(int(v) for v in _csv(args.max_iters))
        except ValueError:
            raise ConfigError(
                f"--max-iters must be comma-separated integers, got {args.max_iters!r}"
            ) from None
    pick = pick_options(args)
    experiments = lists.get("experiments", EXPERIMENTS)
    if pick.enabled and "frontier" not in experiments:
        raise ConfigError(
            "--pick-thresholds reads the frontier experiment's runs: add frontier to --experiments"
        )
    return SuiteOptions(
        out=args.out,
        episode=episode_options(args, one_controller=False),
        data=data_spec(args),
        run=run_options(args),
        pick=pick,
        **lists,
    )


def cmd_suite(args: argparse.Namespace) -> int:
    from bench.report.markdown import print_pairs, print_table
    from bench.suite import run_suite_sync

    options = suite_options(args)
    echo = None if options.run.quiet else (lambda line: print(line, file=sys.stderr))
    result = run_suite_sync(options, echo=echo)
    print(result.refiner_note)
    print_table(result.runs)
    if result.world_note:
        print(f"note: {result.world_note}")
    print_pairs([p for p in result.pairs if p[0] == "oneshot"])  # the clean ones; the report has all
    print(f"suite: {len(result.runs)} runs in {result.wall_s:.1f} s; report {result.report}")
    print_unfinished(
        result.missing,
        result.failed,
        "across the runs, counted as IoU 0 (see each run's summary.json; --retry-failed redoes them)",
    )
    for problem in result.fallback_problems:
        print(f"refseg: error: {problem}", file=sys.stderr)
    if result.fallback_problems:
        return VLMError.exit_code
    # Per-example failures (e.g. no proposals in a heavily perturbed image) are results of
    # the system under test: they are in the table; only an unfinished suite exits 1.
    return 0 if result.missing == 0 else 1
