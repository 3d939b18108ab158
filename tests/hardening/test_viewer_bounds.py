"""Items 8 and 10: the viewer bounds what one request may allocate (a 100-byte record line
claiming a 12000x12000 mask cost 1.09 GB per request; 30000x30000 was a MemoryError and an
HTTP 500) and what one page may carry (a 5 MB sentence made a page of twice that)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from helpers_chaos import chaos_row
from starlette.testclient import TestClient

from bench.chaos.runs import OfflineRun, run_offline
from bench.chaos.viewer_bounds import forged_rle
from bench.samples import CONFIG, SAMPLES
from bench.viewer.app import create_app
from bench.viewer.options import ViewerOptions

LONG = 5_000_000


def _run(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    run = OfflineRun(tmp_path / "run", None, n=1, episode={"controller": "oneshot"})
    run_offline(run)
    first = json.loads((run.run_dir / SAMPLES).read_text(encoding="utf-8").splitlines()[0])
    return run.run_dir, first


def _append(run_dir: Path, record: dict[str, Any]) -> None:
    with (run_dir / SAMPLES).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _without_data_set(run_dir: Path) -> None:
    """The run's data set cannot be loaded here: the pictures fall back to the records' sizes."""
    config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    config["results"]["data"]["dataset"] = str(run_dir / "moved-away.parquet")
    (run_dir / CONFIG).write_text(json.dumps(config), encoding="utf-8")


def _client(run_dir: Path) -> TestClient:
    return TestClient(create_app(ViewerOptions(run=run_dir, preload=False)), base_url="http://127.0.0.1")


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["image", "pred", "gt"])
def test_a_forged_mask_size_costs_a_request_no_memory(tmp_path: Path, layer: str) -> None:
    run_dir, first = _run(tmp_path)
    side = 8_000  # the old viewer drew a 64-megapixel canvas for this 120-byte mask
    _append(run_dir, {**first, "mask": forged_rle(side)})
    _without_data_set(run_dir)
    other = json.loads((run_dir / SAMPLES).read_text(encoding="utf-8").splitlines()[1])["example_id"]
    with _client(run_dir) as client:
        assert client.get(f"/img/a/{layer}.png", params={"id": other}).status_code == 200  # imports done
        tracemalloc.start()
        try:
            response = client.get(f"/img/a/{layer}.png", params={"id": first["example_id"]})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 413 and "8000x8000" in response.text
    assert peak < 32 * 2**20


def test_a_forged_candidate_mask_is_not_decoded(tmp_path: Path) -> None:
    run_dir, first = _run(tmp_path)
    step = {
        "step": 0,
        "query": "q",
        "candidates": [{"index": 0, "prob": 1.0, "mask": forged_rle(30_000)}],
    }
    _append(run_dir, {**first, "rank_steps": [step]})
    _without_data_set(run_dir)
    with _client(run_dir) as client:
        response = client.get(
            "/img/a/candidate.png", params={"id": first["example_id"], "step": 0, "cand": 0}
        )
    assert response.status_code == 413  # was a MemoryError and an HTTP 500


@pytest.mark.slow
def test_long_texts_are_cut_on_every_page_with_their_length(tmp_path: Path) -> None:
    run_dir, first = _run(tmp_path)
    long = "the dog " * (LONG // 8)
    _append(run_dir, {**first, "sentence": long, "error": "E" * LONG, "failed": True})
    with _client(run_dir) as client:
        pages = [
            client.get("/"),
            client.get("/", params={"q": "dog"}),
            client.get("/example", params={"id": first["example_id"]}),
        ]
    for page in pages:
        assert page.status_code == 200 and len(page.text) < 1_000_000
    assert "5,000,000 characters" in pages[2].text and "5,000,000 characters" in pages[0].text


@pytest.mark.slow  # writes and serves a 100 MB result line
def test_viewer_resource_bounds_row_survives() -> None:
    row = chaos_row("viewer resource bounds")
    assert row.survived, row.problems
    assert row.injected == row.detected
    assert row.details["largest_page_bytes"] < 2 * 2**20 and row.details["peak_request_bytes"] < 64 * 2**20
