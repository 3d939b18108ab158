"""The run-folder rows: damaged result lines, a resume with another configuration, a full disk.

- ``undecodable result lines``: a byte that is not UTF-8, NULs before a record (what a crash
  leaves), a record with a broken byte; resume, report and the viewer's reader skip each with
  a note naming its line, and the examples whose records were damaged are redone.
- ``resume with other config``: ``config.json`` deleted, then damaged, before a resume with
  another controller: refused both times (the lines carry the configuration's digest); the
  same configuration resumes and rewrites ``config.json``.
- ``full disk on results``: the run folder on a tiny tmpfs (as root; else a child whose file
  size limit stands in for the full disk): ``refseg bench run`` stops with one line and a
  non-zero exit, keeps every line written, and resumes once there is room, its trace starting
  on a fresh line.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.chaos.result import RowResult, account, record_lines
from bench.chaos.runs import OfflineRun, run_offline
from bench.report.run_reader import load_runs
from bench.samples import CONFIG, SAMPLES, TRACE
from bench.viewer.runs import SampleStore
from tools.errors import ConfigError

ONESHOT = {"controller": "oneshot"}


def _damage(samples: Path) -> list[int]:
    """Three unreadable lines: a broken byte inside line 2, ``\\x80abc`` appended, and the
    last record preceded by NULs. Returns their line numbers."""
    lines = samples.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"sentence":"', b'"sentence":"\xff', 1)
    last = lines.pop()
    lines += [b"\x80abc\n", b"\x00" * 64 + last]
    samples.write_bytes(b"".join(lines))
    return [2, len(lines) - 1, len(lines)]


def undecodable_lines_row(workdir: Path, seed: int = 0) -> RowResult:
    """Undecodable lines anywhere in samples.jsonl: skipped with their line numbers, redone."""
    row = RowResult("undecodable result lines")
    t0 = time.perf_counter()
    run = OfflineRun(workdir / "bad-lines-run", None, n=1, episode=ONESHOT)
    first = run_offline(run)
    bad = _damage(run.run_dir / SAMPLES)
    row.injected = len(bad)
    outcome = run_offline(run)  # the resume: no traceback, the damaged examples redone
    said = " ".join(outcome.notes)
    row.detected = sum(1 for n in bad if f" {n}," in f" {said}," or f"{n} of" in said)
    row.check(row.detected == row.injected, f"the resume named {row.detected} of {bad}: {said!r}")
    report_notes = " ".join(load_runs([run.run_dir])[0].notes)
    row.check(all(str(n) in report_notes for n in bad), f"bench report did not name {bad}")
    store = SampleStore(run.run_dir / SAMPLES)
    store.refresh()
    row.check(store.tail.skipped_at == bad, f"the viewer skipped lines {store.tail.skipped_at}, not {bad}")
    account(row, run.run_dir, first.example_ids, outcome.exit_code)
    row.seconds = time.perf_counter() - t0
    return row


def _refused(run: OfflineRun) -> str | None:
    try:
        run_offline(run)
    except ConfigError as exc:
        return str(exc)
    return None


def other_config_row(workdir: Path, seed: int = 0) -> RowResult:
    """config.json deleted or damaged, then a resume with another controller: refused."""
    row = RowResult("resume with other config")
    t0 = time.perf_counter()
    run_dir = workdir / "mixed-run"
    half = OfflineRun(run_dir, None, n=1, episode=ONESHOT, limit=6)
    other = OfflineRun(run_dir, None, n=1, episode={"controller": "loop"})
    ids = run_offline(half).example_ids
    before = (run_dir / SAMPLES).read_bytes()
    refusals = []
    for damage in ("delete", "garble"):
        if damage == "delete":
            (run_dir / CONFIG).unlink()
        else:
            (run_dir / CONFIG).write_text("{not json", encoding="utf-8")
        refusals.append(_refused(other))
        row.check((run_dir / SAMPLES).read_bytes() == before, f"a refused resume ({damage}) wrote lines")
    row.injected = len(refusals)
    row.detected = sum(1 for r in refusals if r and "another configuration" in r)
    row.check(row.detected == row.injected, f"refusals: {refusals}")
    finish = run_offline(OfflineRun(run_dir, None, n=1, episode=ONESHOT))  # same config: resumes
    recs = account(row, run_dir, ids, finish.exit_code)
    digests = {r.get("config_digest") for r in record_lines(run_dir)}
    row.check(len(digests) == 1 and None not in digests, f"result lines carry digests {digests}")
    row.check({r["stop_reason"] for r in recs} == {"oneshot"}, "lines of another controller mixed in")
    row.check(json.loads((run_dir / CONFIG).read_text())["results"] is not None, "config.json not rewritten")
    row.seconds = time.perf_counter() - t0
    return row


# More than the run's whole trace (about 51 KB) with its small files, less than that and its
# results (about 55 KB): the disk fills while results are written, in whatever order the
# episodes' trace lines and the result lines come.
TMPFS_BYTES = 80 * 1024
FILE_LIMIT_BYTES = 12 * 1024  # stand-in when no tmpfs can be mounted


def _mount(path: Path, size: int, remount: bool = False) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    opts = f"{'remount,' if remount else ''}size={size}"
    cmd = (
        ["mount", "-o", opts, str(path)]
        if remount
        else ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)]
    )
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _limit_files() -> None:  # the child's preexec: writes past the limit fail (EFBIG)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))


def _bench_cli(run_dir: Path, limited: bool) -> subprocess.CompletedProcess[str]:
    """``refseg bench run`` (one scene, one-shot, offline, no cache) in a child process."""
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    argv += ["--controller", "oneshot", "--no-cache", "--quiet", "--bootstrap", "0", "--device", "cpu"]
    argv += ["--out", str(run_dir)]  # --device: no torch import to look for a GPU (start-up time)
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_files if limited else None,
    )


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _joined_lines(trace: Path) -> int:
    """Lines where a torn fragment swallowed a whole event (``{"...torn{"whole": ...}``)."""
    joined = 0
    for raw in trace.read_bytes().splitlines():
        if not _parses(raw):
            starts = [i for i in range(1, len(raw)) if raw.startswith(b'{"', i)]
            joined += any(_parses(raw[i:]) for i in starts)
    return joined


def full_disk_row(workdir: Path, seed: int = 0) -> RowResult:
    """A disk that fills while results are written: one line, non-zero exit, nothing lost."""
    row = RowResult("full disk on results")
    t0 = time.perf_counter()
    mount = workdir / "tiny-disk"
    mount.mkdir(exist_ok=True)
    tmpfs = _mount(mount, TMPFS_BYTES)
    run_dir = mount / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    final = workdir / "full-disk-run"
    shutil.rmtree(final, ignore_errors=True)
    try:
        failed = _bench_cli(run_dir, limited=not tmpfs)
        kept = {r["example_id"]: r["iou"] for r in record_lines(run_dir)}
        if tmpfs:
            _mount(mount, 64 * 2**20, remount=True)  # make room
        resumed = run_offline(OfflineRun(run_dir, None, n=1, episode=ONESHOT))  # the same options
        shutil.copytree(run_dir, final)
    finally:
        if tmpfs:
            subprocess.run(["umount", str(mount)], capture_output=True)
    lines = failed.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("refseg: error: cannot write")]
    # One line: the trace, which the same full disk stopped too, is not a second message.
    one_line = len(errors) == 1 and SAMPLES in errors[0] and len(lines) == 1
    row.injected = 1
    row.detected = int(failed.returncode != 0 and one_line)
    row.check(row.detected == 1, f"the full disk gave exit {failed.returncode} and {failed.stderr[-500:]!r}")
    row.check(len(kept) > 0, "nothing was written before the disk filled (nothing tested)")
    recs = account(row, final, resumed.example_ids, resumed.exit_code)
    row.check(
        all(kept[r["example_id"]] == r["iou"] for r in recs if r["example_id"] in kept), "lines changed"
    )
    row.check(_joined_lines(final / TRACE) == 0, "a torn trace line was joined to the next event")
    row.details.update(disk="tmpfs" if tmpfs else "RLIMIT_FSIZE", kept=len(kept), stderr=lines)
    row.seconds = time.perf_counter() - t0
    return row
