"""Records the runner does not write yet (ranking steps, VLM transcripts): shown when present,
"not recorded in this run" when absent, and the transcript's images only from ``vlm_images/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from helpers_viewer import client_for, png, records, text_of
from starlette.testclient import TestClient

from bench.data import load_dataset_spec
from bench.rle import encode_rle

EXAMPLE = "scene-0:1:3"


def _add_rank_steps(folder: Path) -> None:
    """Append a record of EXAMPLE with two ranking steps (it supersedes the first record)."""
    rec = records(folder)[EXAMPLE]
    gt = {e.example_id: e for e in load_dataset_spec("synthetic", 2)}[EXAMPLE].gt_mask()
    other = np.zeros_like(gt)
    other[:10, :10] = True
    rec["rank_steps"] = [
        {"step": 2, "query": "jade star", "candidates": [
            {"index": 4, "prob": 0.101, "mask": encode_rle(other)},
        ]},
        {"step": 4, "query": "the green star", "candidates": [
            {"index": 4, "prob": 0.646, "mask": encode_rle(gt)},
            {"index": 7, "prob": 0.178, "mask": encode_rle(other)},
        ]},
    ]  # fmt: skip
    with (folder / "samples.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def _add_transcript(folder: Path, image_ref: str) -> bytes:
    """Put a vlm_call with messages into EXAMPLE's episode and a PNG into vlm_images/."""
    (folder / "vlm_images").mkdir(exist_ok=True)
    data = _tiny_png()
    (folder / "vlm_images" / "shown.png").write_bytes(data)
    event = {
        "run_id": "r", "sample_id": EXAMPLE, "event": "vlm_call", "model": "m", "attempt": 1,
        "messages": [
            {"role": "system", "content": "You rank masks."},
            {"role": "user", "content": [{"type": "text", "text": "Which is the jade star?"},
                                         {"type": "image", "file": image_ref}]},
        ],
    }  # fmt: skip
    lines = (folder / "trace.jsonl").read_text().splitlines()
    end = next(
        i for i, line in enumerate(lines) if EXAMPLE in line and json.loads(line)["event"] == "episode_end"
    )
    lines.insert(end, json.dumps(event))
    (folder / "trace.jsonl").write_text("\n".join(lines) + "\n")
    return data


def _tiny_png() -> bytes:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (3, 2), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_absent_records_say_not_recorded(loop_client: TestClient) -> None:
    text = text_of(loop_client.get("/example", params={"id": EXAMPLE}).text)
    assert "Candidate masks of each ranking step: not recorded in this run." in text
    assert "VLM messages: not recorded in this run." in text


def test_ranking_steps_show_each_candidate_with_its_probability(runs: dict[str, Path]) -> None:
    _add_rank_steps(runs["loop"])
    with client_for(runs["loop"]) as client:
        page = client.get("/example", params={"id": EXAMPLE})
        thumbs = [
            client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": s, "cand": c})
            for s, c in ((0, 0), (1, 0), (1, 1))
        ]
        missing = client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": 1, "cand": 2})
        bad = client.get("/img/a/candidate.png", params={"id": EXAMPLE, "step": "x", "cand": 0})
    text = text_of(page.text)
    assert "step 4: the green star" in text and "#4 p=0.646" in text and "#7 p=0.178" in text
    assert all(t.status_code == 200 for t in thumbs) and missing.status_code == bad.status_code == 404
    pictures = [png(t.content) for t in thumbs]
    assert pictures[1].shape == pictures[0].shape and not np.array_equal(pictures[0], pictures[1])
    assert not np.array_equal(pictures[0], pictures[2])  # same mask, another step's label


def test_vlm_transcript_and_its_image(runs: dict[str, Path]) -> None:
    data = _add_transcript(runs["loop"], "vlm_images/shown.png")
    with client_for(runs["loop"]) as client:
        page = client.get("/example", params={"id": EXAMPLE})
        src = page.text.split('class="vlm-img" alt="image shown to the VLM" src="')[1].split('"')[0]
        image = client.get(src.replace("&amp;", "&"))
    text = text_of(page.text)
    assert "You rank masks." in text and "Which is the jade star?" in text
    assert image.status_code == 200 and image.content == data


def test_a_transcript_image_outside_vlm_images_is_refused(runs: dict[str, Path]) -> None:
    folder = runs["loop"]
    for ref in ("../samples.jsonl", "vlm_images/../samples.jsonl", "/etc/passwd", "vlm_images/shown.txt"):
        _add_transcript(folder, ref)  # each call adds the newest transcript: the last image on the page
        with client_for(folder) as client:
            page = client.get("/example", params={"id": EXAMPLE})
            src = page.text.split('class="vlm-img" alt="image shown to the VLM" src="')[-1].split('"')[0]
            assert client.get(src.replace("&amp;", "&")).status_code == 404, ref
