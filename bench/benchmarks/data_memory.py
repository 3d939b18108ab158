"""``refseg bench data-memory``: the peak memory of reading a large data set, held in memory
against streamed as a run reads it.

A RefCOCO-M-shaped parquet with N expressions is generated (a handful of small JPEGs and
masks reused, so writing it is quick), the ``datasets`` cache is warmed once, then each way
of reading it runs in a fresh process, which reports its peak resident set (Linux ``VmHWM``,
reset to the current RSS after the imports) and its time:

- ``in-memory``: every example held at once (:func:`bench.data.load_dataset_spec`, what the
  loaders did before they streamed);
- ``streamed``: what ``bench run`` does: the ids pass (:func:`bench.data.stream.index_examples`)
  then every example streamed to the engine (:func:`bench.data.stream.todo_groups`), each
  image's bytes read as the engine would.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MODES = ("in-memory", "streamed")
_STATUS = Path("/proc/self/status")


def write_large_parquet(path: Path, expressions: int) -> tuple[int, int]:
    """A RefCOCO-M parquet: ``expressions // 5`` images of 240x320, two samples of 2 + 3
    sentences each; returns ``(images, expressions)``."""
    import numpy as np
    from PIL import Image

    from bench.data.fixtures import write_refcocom_parquet
    from bench.rle import encode_rle

    h, w = 240, 320
    jpegs, masks = [], []
    for k in range(8):
        pixels = np.full((h, w, 3), 30 * k, np.uint8)
        pixels[20:100, 30 + 10 * k : 150] = (200, 30, 30)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
        jpegs.append(buf.getvalue())
    yy, xx = np.ogrid[:h, :w]
    for k in range(16):
        masks.append(encode_rle(((yy - 60 - 5 * k) ** 2 + (xx - 100 - 7 * k) ** 2) < (30 + k) ** 2))
    images = expressions // 5
    rows = [
        {
            "image": jpegs[i % 8],
            "image_id": 100_000 + i,
            "samples": [
                {
                    "id": 3 * i,
                    "category": "ball",
                    "mask": masks[i % 16],
                    "sentences": ["the red ball on the left", "left ball"],
                },
                {
                    "id": 3 * i + 1,
                    "category": "cup",
                    "mask": masks[(i + 5) % 16],
                    "sentences": ["a cup", "the white cup near the plate", "cup"],
                },
            ],
        }
        for i in range(images)
    ]
    write_refcocom_parquet(path, rows, image_format="JPEG")
    return images, 5 * images


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(mode: str, path: str, cache_dir: str) -> dict[str, Any]:
    """Read the data set one way, in this process; its peak RSS above the RSS after imports."""
    import datasets  # noqa: F401  # imported before the start: its size is not the data set's

    from bench.data import DataRequest, load_dataset_spec, open_dataset
    from bench.data.refcocom import RefcocomAdapter  # noqa: F401
    from bench.data.stream import index_examples, todo_groups

    start = _status_kib("VmRSS") or 0
    anon_start = _status_kib("RssAnon") or 0
    anon_peak = [anon_start]
    stop = threading.Event()

    def sample() -> None:  # RssAnon has no peak of its own: sample it
        while not stop.wait(0.002):
            anon_peak[0] = max(anon_peak[0], _status_kib("RssAnon") or 0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS
    except OSError:
        reset = False
    t0 = time.perf_counter()
    if mode == "in-memory":
        held = load_dataset_spec(path, cache_dir=cache_dir)
        count = len(held)
    else:
        source = open_dataset(path, DataRequest(cache_dir=cache_dir))
        index = index_examples(source)
        count = 0
        for group in todo_groups(source, index, set(index.order)):
            group[0][1].image_ref.raw()  # type: ignore[attr-defined]  # the image, as the engine reads it
            count += len(group)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    peak = _status_kib("VmHWM")
    return {
        "mode": mode,
        "examples": count,
        "seconds": round(seconds, 2),
        "rss_start_mib": round(start / 1024, 1),
        "peak_above_start_mib": round((peak - start) / 1024, 1) if peak is not None and reset else None,
        "peak_rss_mib": round(peak / 1024, 1) if peak is not None else None,
        "anon_peak_above_start_mib": round((anon_peak[0] - anon_start) / 1024, 1),
    }


def run_data_memory_benchmark(expressions: int, keep: Path | None = None) -> int:
    """Generate, warm, measure each mode in a fresh process, print the table; exit code 0."""
    from bench.data import load_dataset_spec

    with tempfile.TemporaryDirectory(prefix="refseg-data-memory-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path, cache = folder / "refcocom_large.parquet", folder / "hf-cache"
        t0 = time.perf_counter()
        images, count = write_large_parquet(path, expressions)
        load_dataset_spec(str(path), n=1, cache_dir=str(cache))  # the datasets cache, built once
        size, seconds = path.stat().st_size / 2**20, time.perf_counter() - t0
        print(
            f"data set: {count:,} expressions on {images:,} images (RefCOCO-M layout, "
            f"{size:.0f} MiB parquet; written and cached in {seconds:.1f} s)"
        )
        rows = []
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, "-m", "bench.benchmarks.data_memory", mode, str(path), str(cache)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        "peak above the RSS after imports: all resident memory (VmHWM, file pages of the memory-mapped "
        "table included), and anonymous memory (RssAnon, sampled every 2 ms)"
    )
    head = ("mode", "examples", "s", "RSS at start MiB", "peak MiB", "anon peak MiB")
    print(f"{head[0]:<10} {head[1]:>9} {head[2]:>6} {head[3]:>17} {head[4]:>9} {head[5]:>14}")
    for r in rows:
        above = "n/a" if r["peak_above_start_mib"] is None else f"{r['peak_above_start_mib']:.1f}"
        start, anon = r["rss_start_mib"], r["anon_peak_above_start_mib"]
        n, t = r["examples"], r["seconds"]
        print(f"{r['mode']:<10} {n:>9,} {t:>6.1f} {start:>17.1f} {above:>9} {anon:>14.1f}")
    for key, what in (("peak_above_start_mib", "peak"), ("anon_peak_above_start_mib", "anon peak")):
        base, streamed = rows[0][key], rows[1][key]
        if base and streamed:
            print(f"streamed / in-memory {what}: {streamed / base:.2f}")
    return 0


if __name__ == "__main__":  # the measuring child: python -m bench.benchmarks.data_memory MODE PATH CACHE
    print(json.dumps(measure(sys.argv[1], sys.argv[2], sys.argv[3])))
