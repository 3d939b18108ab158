"""The scorecard: run the rows, print the table, say whether anything was lost.

A row *survived* when every example was recorded exactly once with a stop reason, the run's
summary counted the injected faults, the exit code matched the failures, and no file the row
left holds a planted secret (the ``secrets`` column).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.agent_limits import huge_content_row, unbounded_work_row
from bench.chaos.cache_contents import forged_contents_row
from bench.chaos.cache_faults import foreign_entries_row, unusable_cache_row
from bench.chaos.cache_rows import cache_row, shared_cache_row
from bench.chaos.inputs import bad_input_row, dataset_rows_row
from bench.chaos.kill import kill_resume_row
from bench.chaos.protocol import protocol_row
from bench.chaos.ray_address import ray_address_row
from bench.chaos.ray_kills import ray_kills_row
from bench.chaos.reply_bounds import deep_replies_row
from bench.chaos.result import RowResult
from bench.chaos.run_files import full_disk_row, other_config_row, undecodable_lines_row
from bench.chaos.secret_encodings import ENCODED_SECRETS, encoded_credentials_row
from bench.chaos.secrets import credentials_url_row, files_with, secret_files, secrets_row
from bench.chaos.startup import ctrl_c_row
from bench.chaos.tool_options import tool_options_row
from bench.chaos.unreadable_files import unreadable_files_row
from bench.chaos.viewer_bounds import viewer_bounds_row
from bench.chaos.vlm_rows import VLM_FAULTS, vlm_row
from tools.errors import ConfigError

EXTRA_ROWS: dict[str, Callable[[Path, int], RowResult]] = {
    "SIGKILL + resume": kill_resume_row,
    "bad-input corpus": bad_input_row,
    "planted API key": secrets_row,
    "corrupt cache entries": cache_row,
    "shared cache, 2 processes": shared_cache_row,
    # Hardening, round two (issue 10): one row per case, in the order.
    "credentials in base URL": credentials_url_row,
    "undecodable result lines": undecodable_lines_row,
    "cache unwritable / locked": unusable_cache_row,
    "foreign cache entries": foreign_entries_row,
    "unbounded VLM work": unbounded_work_row,
    "huge tool args and names": huge_content_row,
    "resume with other config": other_config_row,
    "full disk on results": full_disk_row,
    "Ctrl-C during start-up": ctrl_c_row,
    "dataset rows and paths": dataset_rows_row,
    "protocol variants": protocol_row,
    # Hardening, round three (issue 20): one row per family of the audit's findings.
    "forged cache contents": forged_contents_row,
    "huge and deep replies": deep_replies_row,
    "Ray address": ray_address_row,
    "URL-encoded credentials": encoded_credentials_row,
    "unreadable run files": unreadable_files_row,
    "viewer resource bounds": viewer_bounds_row,
    "tool options": tool_options_row,
    "Ray driver and worker kills": ray_kills_row,
}


@dataclass(frozen=True)
class ChaosOptions:
    """``refseg bench chaos``.

    Attributes:
        rows: only these rows (names as :func:`row_names` gives them; ``None``: all).
        workdir: keep the runs here (``None``: a temporary folder, removed afterwards).
        seed: seed of the random kill points.
        json_path: also write the rows as JSON here.
    """

    rows: tuple[str, ...] | None = None
    workdir: Path | None = None
    seed: int = 0
    json_path: Path | None = None


def row_names() -> list[str]:
    """Every row, in table order."""
    return [f.name for f in VLM_FAULTS] + list(EXTRA_ROWS)


def run_row(name: str, workdir: Path, *, seed: int = 0) -> RowResult:
    """Run one scorecard row by name (see :func:`row_names`) in its own folder under
    ``workdir``; afterwards every file it left is searched for the planted secrets (those of
    :mod:`bench.chaos.secrets` and every encoding of :mod:`bench.chaos.secret_encodings`')."""
    folder = workdir / "".join(c if c.isalnum() else "-" for c in name.lower())
    folder.mkdir(parents=True, exist_ok=True)
    fault = next((f for f in VLM_FAULTS if f.name == name), None)
    if fault is not None:
        row = vlm_row(fault, folder)
    elif name in EXTRA_ROWS:
        row = EXTRA_ROWS[name](folder, seed)
    else:
        raise KeyError(f"unknown scorecard row {name!r}; rows: {', '.join(row_names())}")
    leaks = secret_files(folder) + files_with(folder, [s.encode() for s in ENCODED_SECRETS])
    row.secrets = len(leaks)
    row.check(not leaks, f"planted secrets in {'; '.join(leaks[:3])}")
    return row


def _run_rows(
    workdir: Path, names: Sequence[str], seed: int, echo: Callable[[str], None] | None
) -> list[RowResult]:
    rows = []
    for name in names:
        t0 = time.perf_counter()
        try:
            row = run_row(name, workdir, seed=seed)
        except Exception as exc:  # the scorecard reports a crashed row instead of dying
            row = RowResult(name, problems=[f"crashed: {type(exc).__name__}: {exc}"])
            row.seconds = time.perf_counter() - t0
        rows.append(row)
        if echo is not None:
            echo(f"{name}: {'survived' if row.survived else 'NOT survived'} ({row.seconds:.1f} s)")
    return rows


def run_scorecard(
    options: ChaosOptions | None = None, *, echo: Callable[[str], None] | None = None
) -> list[RowResult]:
    """Run the rows (all by default) one after another; a row that crashes is a failed row.

    Args:
        options: which rows, where, with which seed; where to write JSON.
        echo: called with one line per finished row.

    Raises:
        ConfigError: a row name that is not in :func:`row_names`, before any row runs.
    """
    opts = options or ChaosOptions()
    names = list(opts.rows) if opts.rows else row_names()
    unknown = [n for n in names if n not in row_names()]
    if unknown:
        raise ConfigError(
            f"unknown scorecard row(s): {', '.join(map(repr, unknown))}; "
            "`refseg bench chaos --list` prints the names (quote those with spaces)"
        )
    if opts.workdir is not None:
        rows = _run_rows(opts.workdir, names, opts.seed, echo)
    else:
        with tempfile.TemporaryDirectory(prefix="refseg-chaos-") as tmp:
            rows = _run_rows(Path(tmp), names, opts.seed, echo)
    if opts.json_path is not None:
        data = [
            {k: v for k, v in {**r.__dict__, "survived": r.survived}.items() if k != "run_dir"} for r in rows
        ]
        opts.json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return rows


COLUMNS = (
    ("fault", 27), ("injected", 8), ("detected", 8), ("survived", 8), ("examples", 8),
    ("lost", 4), ("duplicated", 10), ("secrets", 7), ("fallback", 8), ("failed", 6), ("exit", 4),
    ("s", 5),
)  # fmt: skip


def format_table(rows: Sequence[RowResult]) -> str:
    """The scorecard as a fixed-width text table (problems listed under it)."""
    head = " | ".join(name.ljust(w) for name, w in COLUMNS)
    lines = [head, "-+-".join("-" * w for _, w in COLUMNS)]
    for r in rows:
        cells = (
            r.fault, r.injected, r.detected, "yes" if r.survived else "NO", r.examples, r.lost,
            r.duplicated, r.secrets, r.fallback, r.failed, r.exit_code, f"{r.seconds:.1f}",
        )  # fmt: skip
        lines.append(" | ".join(str(c).ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    for r in rows:
        for p in r.problems:
            lines.append(f"  ! {r.fault}: {p}")
    return "\n".join(lines)


def format_totals(rows: Sequence[RowResult], seconds: float) -> str:
    """The line under the table: rows, survived, lost, duplicated, secrets, time."""
    return (
        f"{len(rows)} row(s), {sum(r.survived for r in rows)} survived, "
        f"{sum(r.lost for r in rows)} lost, {sum(r.duplicated for r in rows)} duplicated, "
        f"{sum(r.secrets for r in rows)} secrets; {seconds:.1f} s"
    )


def scorecard_exit_code(rows: Sequence[RowResult]) -> int:
    """0 when every row survived with nothing lost or duplicated, else 1."""
    return 0 if rows and all(r.survived for r in rows) else 1
