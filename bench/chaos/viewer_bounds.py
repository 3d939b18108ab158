"""The ``viewer resource bounds`` row: records that claim more than a page or a picture holds.

Lines appended to a finished run's ``samples.jsonl`` (the viewer takes an example's last
line), its data set moved away so pictures fall back to the records' sizes: a mask claiming
12000x12000 (1.09 GB per request before), one claiming 30000x30000 (a MemoryError and an HTTP
500 before), a ranking candidate of 30000x30000, and a 50 MB sentence with a 50 MB error (a
52 MB run page and a 105 MB example page before). Every picture request must be refused with
HTTP 413 at a small peak of allocated memory, and every page must stay small, its long texts
cut with their length shown.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult
from bench.chaos.runs import OfflineRun, run_offline
from bench.samples import CONFIG, SAMPLES

BIG_TEXT = 50_000_000
MAX_PAGE_BYTES = 2 * 2**20
MAX_REQUEST_BYTES = 64 * 2**20


def forged_rle(side: int) -> dict[str, Any]:
    """A valid compressed COCO RLE of an empty ``side`` x ``side`` mask: a few bytes in the
    record, ``side**2`` pixels once decoded (made from its one run, no mask allocated)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects({"size": [side, side], "counts": [side * side]}, side, side)
    return {"size": [side, side], "counts": rle["counts"].decode("ascii")}


def _forge(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Append the forged lines and move the data set away; returns the forged records and the
    id of an example left alone."""
    lines = (run_dir / SAMPLES).read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines[:5]]
    step = {"step": 0, "query": "q", "candidates": [{"index": 0, "prob": 1.0, "mask": forged_rle(30_000)}]}
    forged = [
        {**recs[0], "mask": forged_rle(12_000)},
        {**recs[1], "mask": forged_rle(30_000)},
        {**recs[2], "rank_steps": [step]},
        {**recs[3], "sentence": "the dog " * (BIG_TEXT // 8), "error": "E" * BIG_TEXT, "failed": True},
    ]
    with (run_dir / SAMPLES).open("a", encoding="utf-8") as fh:
        for rec in forged:
            fh.write(json.dumps(rec) + "\n")
    config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    config["results"]["data"]["dataset"] = str(run_dir / "moved-away.parquet")
    (run_dir / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    return forged, recs[4]["example_id"]


def _peak(client: Any, url: str, params: dict[str, Any]) -> tuple[int, int]:
    """Status and peak bytes allocated (tracemalloc) while ``url`` was served."""
    tracemalloc.start()
    try:
        status = client.get(url, params=params).status_code
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return status, peak


def viewer_bounds_row(workdir: Path, seed: int = 0) -> RowResult:
    """Forged sizes and 50 MB texts: pictures refused at a small peak, pages small."""
    from starlette.testclient import TestClient

    from bench.viewer.app import create_app
    from bench.viewer.options import ViewerOptions

    row = RowResult("viewer resource bounds")
    t0 = time.perf_counter()
    run = OfflineRun(workdir / "viewer-run", None, n=1, episode={"controller": "oneshot"})
    run_offline(run)
    forged, clean = _forge(run.run_dir)
    big, huge, cand, text = (r["example_id"] for r in forged)
    app = create_app(ViewerOptions(run=run.run_dir, preload=False))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.get("/img/a/image.png", params={"id": clean})  # imports and loads done first
        pictures = [("/img/a/image.png", {"id": big}), ("/img/a/pred.png", {"id": big})]
        pictures += [("/img/a/image.png", {"id": huge}), ("/img/a/gt.png", {"id": huge})]
        pictures += [("/img/a/candidate.png", {"id": cand, "step": 0, "cand": 0})]
        served = [_peak(client, url, params) for url, params in pictures]
        pages = [client.get("/"), client.get("/example", params={"id": text})]
    statuses = [status for status, _ in served]
    peak = max(p for _, p in served)
    sizes = [len(page.content) for page in pages]
    cut = all(page.status_code == 200 and "characters in all" in page.text for page in pages)
    row.injected = 4
    row.detected = statuses[:2].count(413) // 2 + statuses[2:4].count(413) // 2 + (statuses[4] == 413) + cut
    row.check(all(s == 413 for s in statuses), f"picture requests answered {statuses}")
    row.check(peak < MAX_REQUEST_BYTES, f"a picture request allocated {peak / 2**20:.0f} MiB")
    row.check(cut and max(sizes) < MAX_PAGE_BYTES, f"pages of {sizes} bytes (long texts cut: {cut})")
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} forged records bounded")
    row.details.update(largest_page_bytes=max(sizes), peak_request_bytes=peak, statuses=statuses)
    row.seconds = time.perf_counter() - t0
    return row
