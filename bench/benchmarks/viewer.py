"""Time to first byte of the viewer's run page on a generated N-example run.

    refseg bench viewer [--n 5000] [--repeat 20]

Writes a run folder with ``config.json`` and an N-line ``samples.jsonl`` (RefCOCO-sized
masks as RLE, per-tool costs, query histories, and the ranking steps a loop run records: one
per query, :data:`agent.rank_steps.TOP_K` candidate masks each, ellipses 40 to 300 pixels
wide) to a temporary folder, serves it with uvicorn on 127.0.0.1 and measures, over a real
socket, the seconds from sending a request to receiving the first byte of the answer:

- ``open``: reading the run when the app is created, and settling the heap as ``refseg
  view`` does (before the server listens);
- ``first``: the first request after the server started;
- ``warm``: the median of ``--repeat`` requests of the same page;
- ``filtered``: a text search, a stop-reason filter and an IoU sort (median);
- ``example``: an example page, whose ranking steps are read from its line then (median);
- ``appended``: the first request after 100 more lines were appended (incremental read).

Each is measured twice: a finished run (``summary.json`` written by the bench's own
:func:`bench.runner.write_outputs`) and a live run (no ``summary.json``: the page computes
the summary; its confidence intervals follow in the background).
"""

from __future__ import annotations

import gc
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from agent.rank_steps import TOP_K
from bench.rle import encode_rle
from bench.run_folder import write_outputs
from bench.samples import CONFIG, SAMPLES

STOPS = ("guard", "guard", "guard", "max_iter", "fallback")


def _ellipse(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A filled ellipse 40 to 300 pixels wide, drawn inside its own box (fast)."""
    h, w = size
    rx, ry = int(rng.integers(20, 150)), int(rng.integers(20, 150))
    cx, cy = int(rng.integers(rx, w - rx)), int(rng.integers(0, h))
    y0, y1 = max(0, cy - ry), min(h, cy + ry + 1)
    yy, xx = np.ogrid[y0:y1, cx - rx : cx + rx + 1]
    mask = np.zeros(size, dtype=bool)
    mask[y0:y1, cx - rx : cx + rx + 1] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    return mask


_POOL: list[dict[str, Any]] = []


def _candidate_mask(rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
    """The RLE of one of 256 ellipses (encoded once: generating 5,000 runs stays quick)."""
    if not _POOL:
        pool_rng = np.random.default_rng(12345)
        _POOL.extend(encode_rle(_ellipse(pool_rng, size)) for _ in range(256))
    return _POOL[int(rng.integers(0, len(_POOL)))]


def fake_rank_steps(
    queries: list[str], rng: np.random.Generator, size: tuple[int, int]
) -> list[dict[str, Any]]:
    """One ranking step per query, each with :data:`TOP_K` candidate masks."""
    steps = []
    for k, query in enumerate(queries):
        probs = sorted(rng.random(TOP_K), reverse=True)
        candidates = [
            {"index": int(rng.integers(0, 48)), "prob": round(float(p), 6), "origin": "sam_propose",
             "mask": _candidate_mask(rng, size)}
            for p in probs
        ]  # fmt: skip
        steps.append({"step": 2 + 2 * k, "query": query, "candidates": candidates})
    return steps


def fake_record(i: int, rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> dict[str, Any]:
    """One plausible ``samples.jsonl`` record (a rectangle mask, three tools' costs, ranking steps)."""
    h, w = size
    y, x = int(rng.integers(0, h - 60)), int(rng.integers(0, w - 60))
    mask = np.zeros(size, dtype=bool)
    mask[y : y + int(rng.integers(20, 60)), x : x + int(rng.integers(20, 60))] = True
    iou = float(rng.random())
    union = int(mask.sum()) + int(rng.integers(0, 500))
    iterations = int(rng.integers(0, 3))
    queries = [f"query {i}.{k}" for k in range(iterations + 1)]
    cost = {
        "calls": 1,
        "seconds": 0.05,
        "cache_hits": 0,
        "errors": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "usd": 0.0,
    }
    return {
        "index": i,
        "example_id": f"{i // 5}:{i}:0",
        "image_id": str(i // 5),
        "sentence": f"the {('red', 'blue', 'green')[i % 3]} object number {i}",
        "category": "thing",
        "failed": i % 97 == 0,
        "error": "InputError: unreadable image" if i % 97 == 0 else None,
        "iou": iou,
        "inter": int(iou * union),
        "union": union,
        "gt_area": int(mask.sum()),
        "bucket": "small",
        "mask": encode_rle(mask),
        "iterations": iterations,
        "stop_reason": STOPS[i % len(STOPS)],
        "queries": queries,
        "conf": float(rng.random()),
        "gap": float(rng.random()) / 2,
        "chosen": 0,
        "n_proposals": 48,
        "costs": {
            "sam_propose": cost,
            "clip_rank": {**cost, "calls": iterations + 1},
            "vlm": {**cost, "usd": 1e-4},
        },
        "seconds": 0.2,
        "config_digest": "benchmark",
        "rank_steps": fake_rank_steps(queries, rng, size),  # last, as the bench writes it
    }


def write_run(folder: Path, n: int, *, summary: bool) -> Path:
    """A run folder of ``n`` generated records; ``summary.json`` too when ``summary``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "results": {
            "episode": {"controller": "loop", "max_iter": 3},
            "settings": {"max_side": 2048},  # generated records: no model, no weights, no split
            "data": {"dataset": "synthetic", "split": None, "n": 1, "per_image": "all"},
            "examples": {"count": n, "digest": "benchmark"},
        },
        "run": {"created": time.time()},
    }
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    rng = np.random.default_rng(0)
    lines = [json.dumps(fake_record(i, rng), separators=(",", ":")) for i in range(n)]
    (folder / SAMPLES).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if summary:
        write_outputs(folder)
    return folder


def first_byte(port: int, target: str) -> float:
    """Seconds from sending ``GET target`` to the first byte of the answer (then drains it)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        start = time.perf_counter()
        sock.sendall(request)
        sock.recv(1)
        elapsed = time.perf_counter() - start
        while sock.recv(1 << 16):
            pass
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(folder: Path, repeat: int) -> dict[str, float]:
    """Serve ``folder`` and time the run page (see the module notes)."""
    import uvicorn

    from bench.viewer import ViewerOptions, create_app
    from bench.viewer.server import settle_heap

    port = _free_port()
    gc.collect()  # not the viewer's garbage: writing the runs (write_outputs) made it
    start = time.perf_counter()
    app = create_app(ViewerOptions(run=folder, port=port, preload=False))
    settle_heap()  # as `refseg view` does before serving
    opened = time.perf_counter() - start
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        out = {"open": opened, "first": first_byte(port, "/")}
        out["warm"] = statistics.median(first_byte(port, "/") for _ in range(repeat))
        query = "/?q=object&stop=guard&sort=iou&desc=1&page=3"
        out["filtered"] = statistics.median(first_byte(port, query) for _ in range(repeat))
        example = "/example?id=" + quote(f"{100 // 5}:100:0")  # reads its ranking steps from disk
        out["example"] = statistics.median(first_byte(port, example) for _ in range(repeat))
        rng = np.random.default_rng(1)
        n = len(app.state.viewer.a.samples.records)
        more = [json.dumps(fake_record(n + i, rng), separators=(",", ":")) for i in range(100)]
        with (folder / SAMPLES).open("a", encoding="utf-8") as fh:
            fh.write("\n".join(more) + "\n")
        out["appended"] = first_byte(port, "/")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return out


def run_viewer_benchmark(n: int, repeat: int) -> int:
    """Print the run page's time to first byte on a generated run, finished and live.

    Args:
        n: examples in the generated run.
        repeat: requests per warm figure (their median is printed).

    The defaults are ``refseg bench viewer``'s (bench/cli/benchmarks.py).

    Returns:
        0 (it measures; it judges nothing).
    """
    with tempfile.TemporaryDirectory(prefix="refseg-view-bench-") as tmp:
        for label, summary in (("finished run (summary.json)", True), ("live run (no summary.json)", False)):
            folder = write_run(Path(tmp) / label.split()[0], n, summary=summary)
            size = (folder / SAMPLES).stat().st_size / 2**20
            figures = measure(folder, repeat)
            shown = "  ".join(f"{k} {1000 * v:.1f} ms" for k, v in figures.items())
            print(f"run page, {n} examples ({size:.1f} MiB samples.jsonl), {label}: first byte {shown}")
    return 0
