"""``python -m bench.chaos.worker RUN_JSON KILL_AT_LINE``: one scorecard run in a child process.

The scorecard's own entry point (not a user command): it runs :class:`OfflineRun` through the
library API and, when ``KILL_AT_LINE`` is above 0, injects :func:`bench.chaos.kill.kill_mid_line`
into the sample writer. Exit code: the run's.
"""

from __future__ import annotations

import sys

from bench.chaos.kill import kill_mid_line
from bench.chaos.runs import OfflineRun, run_offline


def main(argv: list[str]) -> int:
    run = OfflineRun.from_json(argv[0])
    at_line = int(argv[1]) if len(argv) > 1 else 0
    return run_offline(run, before_write=kill_mid_line(at_line) if at_line > 0 else None).exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
