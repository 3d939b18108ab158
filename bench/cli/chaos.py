"""``refseg bench chaos``: the fault-injection scorecard (see :mod:`bench.chaos`).

:mod:`bench.chaos` (and through it the test doubles, :mod:`bench.doubles`) is imported when
the command runs, not when the parser is built: no other command loads them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chaos",
        help="fault-injection scorecard (offline, a few minutes)",
        description="The fault-injection scorecard: real offline bench runs, one injected fault per row.",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        metavar="ROW",
        help="only these rows (names as --list prints them; default: every row)",
    )
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    p.add_argument(
        "--json", type=Path, default=None, help="also write the rows as JSON here (default: not written)"
    )
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    """Run the scorecard, print the table; exit 1 when any row lost, duplicated or failed."""
    from bench.chaos import (
        ChaosOptions,
        format_table,
        format_totals,
        row_names,
        run_scorecard,
        scorecard_exit_code,
    )

    logging.getLogger("agent.vlm").setLevel(logging.ERROR)  # "no price for model" is noise here
    if args.list:
        print("\n".join(row_names()))
        return 0
    options = ChaosOptions(
        rows=tuple(args.rows) if args.rows else None,
        workdir=args.workdir,
        seed=args.seed,
        json_path=args.json,
    )
    t0 = time.perf_counter()
    rows = run_scorecard(options, echo=lambda s: print(s, file=sys.stderr))
    print(format_table(rows))
    print(format_totals(rows, time.perf_counter() - t0))
    return scorecard_exit_code(rows)
