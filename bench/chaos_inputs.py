"""The scorecard rows beyond VLM faults: kill and resume, bad inputs, a planted key, a damaged cache.

Each row function takes ``(workdir, seed)`` and returns a :class:`bench.chaos.RowResult`;
:data:`EXTRA_ROWS` maps row names to them (``bench.chaos`` runs them after the VLM rows).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.chaos import RowResult, account, bench_args, run_in_process
from bench.chaos_server import ScriptedServer, Status
from bench.samples import KILL_AT_LINE_ENV, SAMPLES

KILL_TIMEOUT_S = 120.0
PLANTED_KEY = "sk-chaos-planted-0123456789abcdef"

# --------------------------------------------------------------------------- kill and resume


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _spawn(argv: list[str], env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != KILL_AT_LINE_ENV}
    env.update(env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def kill_plan(seed: int) -> list[tuple[str, float]]:
    """Six kill points: three in the middle of a result line, two after some lines, one at a
    random moment (seconds after the invocation's first line)."""
    rng = random.Random(seed)
    return [
        ("torn", rng.randint(2, 5)),
        ("after_lines", rng.randint(2, 8)),
        ("torn", 1),
        ("at_time", rng.uniform(0.0, 0.3)),
        ("torn", rng.randint(2, 6)),
        ("after_lines", rng.randint(1, 6)),
    ]


def _torn_tail(path: Path) -> int | None:
    """Offset where a torn last line starts, or None when the file ends with a newline."""
    data = path.read_bytes() if path.exists() else b""
    if not data or data.endswith(b"\n"):
        return None
    return data.rfind(b"\n") + 1


def _repaired(path: Path, offset: int) -> bool:
    """The bytes from ``offset`` are now whole lines (the torn tail was cut and redone)."""
    import json

    tail = path.read_bytes()[offset:]
    try:
        return all(isinstance(json.loads(line), dict) for line in tail.splitlines())
    except ValueError:
        return False


def kill_resume_row(workdir: Path, seed: int = 0, *, n_scenes: int = 6) -> RowResult:
    """SIGKILL ``refseg bench run`` subprocesses at the points of :func:`kill_plan`, then finish.

    After each kill the next invocation must cut a torn last line off (and redo it); the
    last, uninterrupted invocation must leave every example exactly once, and the metrics
    must equal those of a run that was never interrupted.
    """
    row = RowResult("SIGKILL + resume")
    t0 = time.perf_counter()
    run_dir, cache = workdir / "kill-run", workdir / "kill-cache"
    extra = ("--controller", "loop", "--bootstrap", "100")
    argv = bench_args(run_dir, cache, *extra, n=n_scenes)
    ref_dir = workdir / "kill-reference"
    _, ids, _ = run_in_process(bench_args(ref_dir, workdir / "kill-ref-cache", *extra, n=n_scenes))
    samples = run_dir / SAMPLES
    kills, torn_seen, repaired, log = 0, 0, 0, []
    pending: int | None = None  # offset of a torn line the next invocation must repair
    for kind, value in [*kill_plan(seed), ("finish", 0.0)]:
        before = _lines(samples)
        env = {KILL_AT_LINE_ENV: str(int(value))} if kind == "torn" else {}
        proc = _spawn(argv, env)
        start, first_line = time.monotonic(), None
        while proc.poll() is None and time.monotonic() - start < KILL_TIMEOUT_S:
            now = _lines(samples)
            if first_line is None and now > before:
                first_line = time.monotonic()
            if (kind == "after_lines" and now >= before + value) or (
                kind == "at_time" and first_line is not None and time.monotonic() - first_line >= value
            ):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.communicate(timeout=KILL_TIMEOUT_S)
        if pending is not None and _lines(samples) > before:  # it got far enough to repair
            repaired += _repaired(samples, pending)
            pending = None
        killed = proc.returncode == -signal.SIGKILL
        kills += killed and kind != "finish"
        tail = _torn_tail(samples)
        if tail is not None:
            torn_seen += 1
            pending = tail
        log.append(
            f"{kind}={value:g}: rc {proc.returncode}, lines {before}->{_lines(samples)}, "
            f"torn {tail is not None}"
        )
    account(row, run_dir, ids, proc.returncode)
    row.injected = kills
    row.detected = repaired
    row.details.update(kill_log=log, torn_lines=torn_seen, repaired=repaired)
    row.check(kills >= 5, f"only {kills} of the kill points killed a run")
    row.check(pending is None, "the run ended with a torn last line")
    row.check(
        torn_seen >= 3 and repaired == torn_seen, f"{torn_seen} torn line(s), {repaired} cut and redone"
    )
    got = _json(run_dir / "summary.json")["metrics"]
    want = _json(ref_dir / "summary.json")["metrics"]
    row.check(got == want, "metrics differ from the uninterrupted run")
    row.details["miou"] = got.get("miou")
    row.seconds = time.perf_counter() - t0
    return row


def _json(path: Path) -> dict[str, Any]:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- bad inputs


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    img = PILImage.fromarray(arr) if mode is None else PILImage.fromarray(arr).convert(mode)
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _box_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[h // 4 : h // 4 + max(1, h // 2), w // 4 : w // 4 + max(1, w // 2)] = True
    return m


def bad_input_rows() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """RefCOCO-M rows of bad inputs, and what each image id must end as (``ok`` or ``failed``)."""
    from tools.offline.scenes import generate_scene

    scene = generate_scene(7)
    img = np.asarray(scene.image, dtype=np.uint8)
    h, w = img.shape[:2]
    obj = scene.objects[0]
    jpeg = _png(img, fmt="JPEG", quality=90)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display: (h, w) becomes (w, h)
    rotated = _png(img, fmt="JPEG", exif=exif.tobytes())
    big = PILImage.new("RGB", (10_000, 10_000), (120, 130, 140))
    big.paste((200, 30, 30), (2500, 2500, 7500, 7500))
    buf = io.BytesIO()
    big.save(buf, format="PNG", compress_level=1)
    images: list[tuple[str, bytes | np.ndarray, tuple[int, int], str]] = [
        ("truncated JPEG", jpeg[: len(jpeg) // 2], (h, w), "failed"),
        ("zero-byte file", b"", (h, w), "failed"),
        ("PNG named .jpg", _png(img), (h, w), "ok"),
        ("1x1 image", np.full((1, 1, 3), 200, np.uint8), (1, 1), "any"),
        ("10000x10000 image", buf.getvalue(), (10_000, 10_000), "ok"),
        ("grayscale", _png(img, "L"), (h, w), "ok"),
        ("RGBA", _png(img, "RGBA"), (h, w), "ok"),
        ("16-bit PNG", _png(img[..., 0].astype(np.uint16) * 257), (h, w), "ok"),
        ("CMYK JPEG", _png(img, "CMYK", fmt="JPEG"), (h, w), "ok"),
        ("EXIF-rotated photo", rotated, (w, h), "ok"),
    ]
    rows, expect = [], {}
    for i, (name, data, (mh, mw), outcome) in enumerate(images, start=1):
        mask = obj.mask if (mh, mw) == (h, w) else _box_mask(mh, mw)
        if name == "EXIF-rotated photo":
            mask = np.rot90(obj.mask, k=-1)
        sentence = obj.expressions[0] if (mh, mw) == (h, w) else "the object in the middle"
        rows.append(
            {
                "image": data,
                "image_id": i,
                "file_name": f"{name.replace(' ', '_')}.jpg",
                "samples": [{"id": i, "sentences": [sentence], "mask": np.ascontiguousarray(mask)}],
            }
        )
        expect[str(i)] = f"{name}|{outcome}"
    texts = [
        ("empty expression", "", "failed"),
        ("whitespace expression", " \t\n ", "failed"),
        ("10,000-character expression", "the red circle " * 667, "failed"),
        ("control characters", "the\x00 red\x07 \x1b[31mcircle\u202e\r", "any"),
    ]
    base = len(rows)
    for j, (name, text, outcome) in enumerate(texts, start=1):
        rows.append(
            {
                "image": img,
                "image_id": base + j,
                "samples": [{"id": base + j, "sentences": [text], "mask": obj.mask}],
            }
        )
        expect[str(base + j)] = f"{name}|{outcome}"
    n = len(rows)
    rows.append(
        {
            "image": img,
            "image_id": n + 1,
            "samples": [{"id": n + 1, "sentences": ["x"], "mask": _box_mask(50, 60)}],
        }
    )
    expect[str(n + 1)] = "mask size != image size|failed"
    rows.append(
        {
            "image": img,
            "image_id": n + 2,
            "samples": [
                {"id": n + 2, "sentences": ["x"], "mask": {"counts": "~~not an RLE!!", "size": [h, w]}}
            ],
        }
    )
    expect[str(n + 2)] = "RLE that does not decode|failed"
    return rows, expect


def bad_input_row(workdir: Path, seed: int = 0) -> RowResult:
    """One run over the bad-input corpus: each item ends recorded, failed ones with a reason."""
    from bench.fixtures import write_refcocom_parquet

    row = RowResult("bad-input corpus")
    t0 = time.perf_counter()
    rows, expect = bad_input_rows()
    path = write_refcocom_parquet(workdir / "bad-inputs.parquet", rows)
    run_dir = workdir / "bad-run"
    argv = bench_args(run_dir, workdir / "bad-cache", "--controller", "loop")
    argv[argv.index("--dataset") + 1] = str(path)
    del argv[argv.index("--n") : argv.index("--n") + 2]
    code, ids, _ = run_in_process(argv)
    recs = account(row, run_dir, ids, code)
    row.injected = len(expect)
    outcomes = {}
    for rec in recs:
        name, want = expect[rec["image_id"]].split("|")
        got = "failed" if rec["failed"] else "ok"
        outcomes[name] = f"{got}: {rec['error']}" if rec["failed"] else f"ok (iou {rec['iou']:.2f})"
        row.check(want in ("any", got), f"{name}: expected {want}, got {got} ({rec.get('error')})")
    row.detected = row.failed
    row.details["outcomes"] = outcomes
    row.seconds = time.perf_counter() - t0
    return row


# --------------------------------------------------------------------------- secrets


def files_with(root: Path, needles: list[bytes]) -> list[str]:
    """``path: needle`` for every file under ``root`` holding one of ``needles``."""
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p.relative_to(root)}: {n.decode()}" for n in needles if n in data]
    return hits


def secrets_row(workdir: Path, seed: int = 0) -> RowResult:
    """A planted key, echoed back by the server in its errors, must appear in no file or output."""
    from bench.cli import main

    row = RowResult("planted API key")
    t0 = time.perf_counter()
    key = PLANTED_KEY
    echoes = [
        Status(401, f"Incorrect API key provided: {key}"),
        Status(500, f"upstream said: Authorization: Bearer {key}"),
        Status(429, f"rate limited for key {key}", retry_after=0.01),
    ]
    served = {"n": 0}

    def policy(request: dict[str, Any]) -> Any:
        from bench.chaos import agent_reply

        served["n"] += 1
        return echoes[served["n"] % 3] if served["n"] % 2 == 0 else agent_reply(request)

    run_dir, cache = workdir / "secret-run", workdir / "secret-cache"
    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY")}
    os.environ["SILICONFLOW_API_KEY"] = key  # must not be sent to this (non-SiliconFlow) host ...
    os.environ["REFSEG_VLM_API_KEY"] = key  # ... this one is, and must still never be written
    try:
        with ScriptedServer(policy=policy, max_requests=100_000, max_lifetime_s=600) as srv:
            argv = bench_args(
                run_dir, cache, "--controller", "agent", "--vlm-base-url", srv.base_url,
                "--vlm-timeout", "2", "--vlm-max-retries", "1", "--tau-conf", "1.0", "--tau-gap", "1.0", n=1,
            )  # fmt: skip
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
                # What a user shows others: the report (markdown, figures) and the trace view.
                main(["bench", "report", str(run_dir)])
                main(["trace", str(run_dir)])
            sent = [r.headers.get("authorization", "") for r in srv.requests]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    from bench.data import load_dataset_spec

    ids = [ex.example_id for ex in load_dataset_spec("synthetic", 1)]
    account(row, run_dir, ids, code)
    needles = [key.encode(), b"Bearer"]
    leaks = files_with(run_dir, needles) + files_with(cache, needles)
    leaks += [f"{name}: {n.decode()}" for name, text in (("stdout", out), ("stderr", err))
              for n in needles if n.decode() in text.getvalue()]  # fmt: skip
    row.injected = served["n"] // 2
    row.detected = int(row.details["summary_faults"].get("vlm_attempt_errors", 0))
    row.check(any(key in s for s in sent), "the key never reached the server (nothing was tested)")
    row.check(not leaks, f"key leaked: {'; '.join(leaks[:5])}")
    row.details["leaks"] = leaks
    row.details["output_chars"] = len(out.getvalue()) + len(err.getvalue())
    row.seconds = time.perf_counter() - t0
    return row


# --------------------------------------------------------------------------- cache


def damage_cache(cache_dir: Path, marker: Path) -> int:
    """Truncate every stored value (in the database and in value files) and plant one pickle.

    Returns the number of entries damaged.
    """
    db = sqlite3.connect(cache_dir / "cache.db")
    try:
        rows = db.execute("SELECT rowid, filename FROM Cache").fetchall()
        db.execute("UPDATE Cache SET value = substr(value, 1, length(value) / 2) WHERE value IS NOT NULL")
        payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
        if rows:  # mode 4 = pickle: diskcache would unpickle it (and run the command)
            db.execute(
                "UPDATE Cache SET mode = 4, value = ?, filename = NULL WHERE rowid = ?", (payload, rows[0][0])
            )
        db.commit()
    finally:
        db.close()
    for _, filename in rows:
        if filename:
            f = cache_dir / filename
            if f.exists():
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return len(rows)


def cache_row(workdir: Path, seed: int = 0) -> RowResult:
    """Every cache entry truncated (and one replaced by a pickle) between two runs: same results."""
    row = RowResult("corrupt cache entries")
    t0 = time.perf_counter()
    cache = workdir / "damaged-cache"
    first_dir, second_dir = workdir / "cache-first", workdir / "cache-second"
    extra = ("--controller", "loop")
    run_in_process(bench_args(first_dir, cache, *extra, n=2))
    marker = workdir / "pickle-ran"
    row.injected = damage_cache(cache, marker)
    code, ids, corrupt = run_in_process(bench_args(second_dir, cache, *extra, n=2))
    recs = account(row, second_dir, ids, code)
    row.detected = corrupt  # entries the checksum (or the pickle refusal) caught
    first = {r["example_id"]: r for r in account(RowResult("first"), first_dir, ids, 0)}
    same = all(
        first[r["example_id"]]["iou"] == r["iou"] and first[r["example_id"]]["mask"] == r["mask"]
        for r in recs
    )
    row.check(same, "results after the damage differ from the first run's")
    row.check(not marker.exists(), "a pickled cache row was executed")
    row.check(row.injected > 0, "the cache was empty: nothing damaged")
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} damaged entries detected")
    row.seconds = time.perf_counter() - t0
    return row


def shared_cache_row(workdir: Path, seed: int = 0) -> RowResult:
    """Two ``refseg bench run`` processes at once on one cache folder: the results of one alone."""
    row = RowResult("shared cache, 2 processes")
    t0 = time.perf_counter()
    cache = workdir / "shared-cache"
    extra = ("--controller", "loop")
    _, ids, _ = run_in_process(bench_args(workdir / "shared-alone", None, *extra, n=3))
    want = _json(workdir / "shared-alone" / "summary.json")["metrics"]
    dirs = [workdir / f"shared-{i}" for i in (1, 2)]
    procs = [_spawn(bench_args(d, cache, *extra, n=3), {}) for d in dirs]
    for p in procs:
        p.communicate(timeout=KILL_TIMEOUT_S)
    codes = [int(p.returncode) for p in procs]
    row.injected = len(procs)
    for d, code in zip(dirs, codes, strict=True):
        sub = RowResult(d.name)
        account(sub, d, ids, code)
        row.lost += sub.lost
        row.duplicated += sub.duplicated
        row.failed += sub.failed
        row.problems += [f"{d.name}: {p}" for p in sub.problems]
        same = _json(d / "summary.json")["metrics"] == want
        row.detected += same
        row.check(same, f"{d.name}: metrics differ from a single process's")
    row.examples, row.exit_code, row.run_dir = len(ids), max(codes), dirs[0]
    row.seconds = time.perf_counter() - t0
    return row


EXTRA_ROWS: dict[str, Callable[[Path, int], RowResult]] = {
    "SIGKILL + resume": kill_resume_row,
    "bad-input corpus": bad_input_row,
    "planted API key": secrets_row,
    "corrupt cache entries": cache_row,
    "shared cache, 2 processes": shared_cache_row,
}
