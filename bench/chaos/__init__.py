"""``python -m bench.chaos`` / ``refseg bench chaos``: the fault-injection scorecard.

Runs real bench runs offline (generated scenes, the offline toolset, no weights) through the
library API and injects one fault per row:

- VLM faults (:mod:`bench.chaos.vlm_rows`), each in an agent run of at least 20 examples at
  concurrency 8 against a scripted local OpenAI-compatible server (:mod:`bench.doubles.scripted_server`):
  429 with ``Retry-After``, 500 bursts, connection resets, replies slower than the timeout,
  truncated JSON bodies, malformed tool arguments, unknown tool names, endless tool calls,
  empty choices and odd ``finish_reason`` values;
- kill and resume (:mod:`bench.chaos.kill`): child runs SIGKILLed at random points, some in
  the middle of writing a result line (a hook the scorecard injects into the sample writer),
  then resumed; metrics must equal an uninterrupted run's;
- a corpus of bad inputs (:mod:`bench.chaos.inputs`);
- a planted API key that the server echoes back in its errors (:mod:`bench.chaos.secrets`);
- a cache whose every entry is corrupted between two runs, one entry replaced by a pickle,
  and two processes sharing one cache folder (:mod:`bench.chaos.cache_rows`);
- the second round (issue 10), one row per case: credentials in the base URL
  (:mod:`bench.chaos.secrets`); undecodable result lines, a resume with another
  configuration, a full disk while writing results (:mod:`bench.chaos.run_files`); a full,
  locked or read-only cache and foreign cache entries (:mod:`bench.chaos.cache_faults`);
  unbounded VLM work and huge tool arguments or names (:mod:`bench.chaos.agent_limits`);
  Ctrl-C during start-up (:mod:`bench.chaos.startup`); data-set rows without samples and
  image paths outside the data set (:mod:`bench.chaos.inputs`); protocol variants
  (:mod:`bench.chaos.protocol`).

Every row's folder is searched afterwards for the planted secrets (the ``secrets`` column).

:func:`run_scorecard` runs the rows; :func:`format_table` prints them; the command exits 1
when any row lost or duplicated an example, leaked a secret, or did not survive.
"""

from bench.chaos.result import STOP_REASONS, RowResult, account
from bench.chaos.scorecard import (
    ChaosOptions,
    format_table,
    format_totals,
    row_names,
    run_row,
    run_scorecard,
    scorecard_exit_code,
)
from bench.chaos.vlm_rows import VLM_FAULTS, agent_reply

__all__ = [
    "STOP_REASONS",
    "VLM_FAULTS",
    "ChaosOptions",
    "RowResult",
    "account",
    "agent_reply",
    "format_table",
    "format_totals",
    "row_names",
    "run_row",
    "run_scorecard",
    "scorecard_exit_code",
]
