"""``python -m bench.chaos.worker RUN_JSON KILL_AT_LINE [STATS_JSON]``: one scorecard run in a
child process.

The scorecard's own entry point (not a user command): it runs :class:`OfflineRun` through the
library API and, when ``KILL_AT_LINE`` is above 0, injects :func:`bench.chaos.kill.kill_mid_line`
into the sample writer. With ``STATS_JSON`` it writes there the process's own peak RSS
(``VmHWM``: the parent's pages a fork or vfork shared before ``exec`` do not count, as they do
in ``ru_maxrss``). Exit code: the run's.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from bench.chaos.kill import kill_mid_line
from bench.chaos.runs import OfflineRun, run_offline


def main(argv: list[str]) -> int:
    run = OfflineRun.from_json(argv[0])
    at_line = int(argv[1]) if len(argv) > 1 else 0
    code = run_offline(run, before_write=kill_mid_line(at_line) if at_line > 0 else None).exit_code
    if len(argv) > 2:
        Path(argv[2]).write_text(json.dumps({"peak_rss_bytes": peak_rss_bytes()}), encoding="utf-8")
    return code


def peak_rss_bytes() -> int:
    """This process's peak resident set since ``exec`` (Linux ``VmHWM``; else ``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
