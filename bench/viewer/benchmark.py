"""Time to first byte of the viewer's run page on a generated N-example run.

    python -m bench.viewer.benchmark [--n 5000] [--repeat 20]

Writes a run folder with ``config.json`` and an N-line ``samples.jsonl`` (RefCOCO-sized
masks as RLE, per-tool costs, query histories) to a temporary folder, serves it with
uvicorn on 127.0.0.1 and measures, over a real socket, the seconds from sending a request
to receiving the first byte of the answer:

- ``open``: reading the run when the app is created (before the server listens);
- ``first``: the first request after the server started;
- ``warm``: the median of ``--repeat`` requests of the same page;
- ``filtered``: a text search, a stop-reason filter and an IoU sort (median);
- ``appended``: the first request after 100 more lines were appended (incremental read).

Each is measured twice: a finished run (``summary.json`` written by the bench's own
:func:`bench.runner.write_outputs`) and a live run (no ``summary.json``: the page computes
the summary; its confidence intervals follow in the background).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.rle import encode_rle
from bench.run_folder import write_outputs
from bench.samples import CONFIG, SAMPLES

STOPS = ("guard", "guard", "guard", "max_iter", "fallback")


def fake_record(i: int, rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> dict[str, Any]:
    """One plausible ``samples.jsonl`` record (a rectangle mask, three tools' costs)."""
    h, w = size
    y, x = int(rng.integers(0, h - 60)), int(rng.integers(0, w - 60))
    mask = np.zeros(size, dtype=bool)
    mask[y : y + int(rng.integers(20, 60)), x : x + int(rng.integers(20, 60))] = True
    iou = float(rng.random())
    union = int(mask.sum()) + int(rng.integers(0, 500))
    iterations = int(rng.integers(0, 3))
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
        "queries": [f"query {i}.{k}" for k in range(iterations + 1)],
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
    }


def write_run(folder: Path, n: int, *, summary: bool) -> Path:
    """A run folder of ``n`` generated records; ``summary.json`` too when ``summary``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "results": {
            "episode": {"controller": "loop", "max_iter": 3},
            "settings": {"weights": "pretrained"},
            "data": {"dataset": "synthetic", "split": "validation", "n": 1, "per_image": "all"},
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

    port = _free_port()
    start = time.perf_counter()
    app = create_app(ViewerOptions(run=folder, port=port, preload=False))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time to first byte of the viewer's run page")
    parser.add_argument("--n", type=int, default=5000, help="examples in the generated run (default 5000)")
    parser.add_argument("--repeat", type=int, default=20, help="requests per warm figure (default 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="refseg-view-bench-") as tmp:
        for label, summary in (("finished run (summary.json)", True), ("live run (no summary.json)", False)):
            folder = write_run(Path(tmp) / label.split()[0], args.n, summary=summary)
            size = (folder / SAMPLES).stat().st_size / 2**20
            figures = measure(folder, args.repeat)
            shown = "  ".join(f"{k} {1000 * v:.1f} ms" for k, v in figures.items())
            print(f"run page, {args.n} examples ({size:.1f} MiB samples.jsonl), {label}: first byte {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
