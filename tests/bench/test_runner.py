"""The bench runner: one line per sentence, resume, torn lines, retries, concurrency, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_runner import id_counts, run, sample_lines, synthetic

from bench.cli import main
from bench.data import load_dataset_spec
from bench.data.fixtures import write_refcocom_parquet
from bench.metrics import iou
from bench.options import DataSpec
from bench.rle import decode_rle
from bench.samples import read_samples
from tools.errors import CheckpointError, ConfigError
from tools.offline.scenes import generate_scene

REPO = Path(__file__).resolve().parents[2]


def test_one_line_per_sentence_and_outputs(tmp_path: Path) -> None:
    examples = synthetic(2)
    res = run(tmp_path / "run", tmp_path / "cache", examples, bootstrap=200)
    lines = sample_lines(tmp_path / "run")
    assert sorted(r["example_id"] for r in lines) == sorted(ex.example_id for ex in examples)
    by_id = {ex.example_id: ex for ex in examples}
    for rec in lines[:5]:
        assert rec["sentence"] == by_id[rec["example_id"]].sentence
        if not rec["failed"]:
            mask = decode_rle(rec["mask"])
            gt = by_id[rec["example_id"]].gt_mask()
            assert rec["iou"] == pytest.approx(iou(mask, gt))
            assert rec["gt_area"] == int(gt.sum())
        assert set(rec["costs"]) >= {"region_propose", "attribute_rank"}
    ious = np.load(tmp_path / "run" / "ious.npy")
    order = [ex.example_id for ex in examples]
    recs = {r["example_id"]: r for r in lines}
    assert ious.tolist() == [recs[e]["iou"] for e in order]  # example order, not finish order
    s = res.summary.model_dump(mode="json")
    assert s["counts"] == {
        "expected": len(examples),
        "examples": len(examples),
        "missing": 0,
        "ok": len(examples),
        "failed": 0,
        "images": 2,
    }
    assert s["metrics"]["miou"] == pytest.approx(float(ious.mean()))
    assert s["metrics"]["miou_ci"][0] <= s["metrics"]["miou"] <= s["metrics"]["miou_ci"][1]
    assert s["propose"]["per_image"] == 1.0  # cold: one propose per image, however many sentences
    assert s["costs"]["tools"]["region_propose"]["calls"] == len(examples)
    assert sum(s["stop_reasons"].values()) == len(examples)
    assert s["peak_cuda_memory_bytes"] is None  # cpu
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["counts"]["ok"] == len(examples)
    assert res.exit_code == 0


def test_warm_cache_computes_no_proposals(tmp_path: Path) -> None:
    examples = synthetic(2)
    cold = run(tmp_path / "a", tmp_path / "cache", examples)
    warm = run(tmp_path / "b", tmp_path / "cache", examples)
    assert cold.summary.propose.computations == 2
    assert warm.summary.propose.computations == 0
    assert warm.summary.propose.per_image == 0.0


@pytest.mark.slow
def test_concurrency_1_and_8_give_identical_ious(tmp_path: Path) -> None:
    examples = synthetic(3)
    one = run(tmp_path / "c1", tmp_path / "k1", examples, concurrency=1)
    eight = run(tmp_path / "c8", tmp_path / "k8", examples, concurrency=8)
    ious1 = {r["example_id"]: r["iou"] for r in sample_lines(tmp_path / "c1")}
    ious8 = {r["example_id"]: r["iou"] for r in sample_lines(tmp_path / "c8")}
    assert ious1 == ious8
    assert eight.summary.propose.per_image == one.summary.propose.per_image == 1.0
    print(
        f"examples/s: concurrency 1 {one.summary.timing.examples_per_s}, "
        f"8 {eight.summary.timing.examples_per_s}"
    )


def test_resume_after_limit_and_torn_line(tmp_path: Path) -> None:
    examples = synthetic(2)
    d = tmp_path / "run"
    first = run(d, tmp_path / "cache", examples, limit=7)
    assert first.ran == 7 and first.missing == len(examples) - 7 and first.exit_code == 1
    data = (d / "samples.jsonl").read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn_id = json.loads(data[last_start:])["example_id"]
    (d / "samples.jsonl").write_bytes(data[: last_start + 25])  # killed mid-write of line 7
    records, torn = read_samples(d)
    assert torn == 1 and torn_id not in records and len(records) == 6
    second = run(d, tmp_path / "cache", examples)
    assert second.ran == len(examples) - 6 and second.skipped == 6
    assert second.notes and "torn" in second.notes[0]
    counts = id_counts(d)
    assert set(counts) == {ex.example_id for ex in examples}
    assert set(counts.values()) == {1}  # every example exactly once, the torn one redone
    assert second.summary.complete and second.exit_code == 0
    assert second.summary.timing.invocations == 2
    third = run(d, tmp_path / "cache", examples)  # nothing left: a no-op
    assert third.ran == 0 and len(sample_lines(d)) == len(examples)


def test_retry_failed_redoes_only_failed_and_supersedes(tmp_path: Path) -> None:
    examples = synthetic(2)
    d = tmp_path / "run"
    run(d, tmp_path / "cache", examples)
    victim = sample_lines(d)[3]
    with (d / "samples.jsonl").open("a", encoding="utf-8") as fh:  # a failure from an earlier try
        fh.write(json.dumps({**victim, "failed": True, "iou": 0.0, "error": "ToolError: boom"}) + "\n")
    plain = run(d, tmp_path / "cache", examples)
    assert plain.ran == 0 and plain.failed == 1  # without --retry-failed it stays failed
    retried = run(d, tmp_path / "cache", examples, retry_failed=True)
    assert retried.ran == 1 and retried.failed == 0
    records, _ = read_samples(d)
    assert records[victim["example_id"]].iou == victim["iou"]
    assert records[victim["example_id"]].error is None
    assert id_counts(d)[victim["example_id"]] == 3  # old, failed, redone: the last one counts


def _bad_parquet(path: Path) -> Path:
    scenes = [generate_scene(s) for s in (1, 2, 3)]
    rows = []
    for i, scene in enumerate(scenes):
        samples = [
            {"id": 10 * i + j, "sentences": o.expressions[:2], "mask": o.mask, "category": o.shape}
            for j, o in enumerate(scene.objects[:2])
        ]
        rows.append({"image": scene.image, "image_id": i + 1, "samples": samples})
    rows[1]["image"] = b"\x89PNG\r\n\x1a\n this is not an image"  # corrupt bytes
    rows[2]["samples"][0]["mask"] = np.ones((50, 60), dtype=bool)  # wrong size for the image
    return write_refcocom_parquet(path, rows)


def test_bad_examples_are_recorded_and_the_run_completes(tmp_path: Path) -> None:
    path = _bad_parquet(tmp_path / "bad.parquet")
    examples = load_dataset_spec(str(path))
    res = run(tmp_path / "run", tmp_path / "cache", examples, spec=DataSpec(str(path)))
    recs = {r["example_id"]: r for r in sample_lines(tmp_path / "run")}
    assert len(recs) == len(examples) == 12
    bad_image = [r for r in recs.values() if r["image_id"] == "2"]
    assert all(r["failed"] and r["iou"] == 0.0 and r["error"] for r in bad_image)
    bad_mask = [r for r in recs.values() if r["image_id"] == "3" and r["example_id"].startswith("3:20:")]
    assert len(bad_mask) == 2 and all(r["failed"] and "size" in r["error"] for r in bad_mask)
    good = [r for r in recs.values() if not r["failed"]]
    assert len(good) == 6
    assert res.summary.counts.failed == 6 and res.exit_code == 1
    assert res.summary.metrics.n == 12  # failed examples count as IoU 0
    assert res.summary.metrics.value("miou") == pytest.approx(sum(r["iou"] for r in good) / 12)


def test_resume_with_another_controller_is_refused(tmp_path: Path) -> None:
    examples = synthetic(2)
    d = tmp_path / "run"
    run(d, tmp_path / "cache", examples, episode={"controller": "oneshot"}, limit=3)
    with pytest.raises(ConfigError, match=r"controller.*--out"):
        run(d, tmp_path / "cache", examples, episode={"controller": "loop"})
    with pytest.raises(ConfigError, match="tau_conf"):
        run(d, tmp_path / "cache", examples, episode={"controller": "oneshot", "tau_conf": 0.9})
    ok = run(
        d, tmp_path / "cache", examples, episode={"controller": "oneshot"}, concurrency=7
    )  # run options may differ
    assert ok.ran == len(examples) - 3


def test_run_level_error_stops_the_run(tmp_path: Path) -> None:
    examples = synthetic(1)
    # The first example's propose call finds no SAM weights: the run stops with that one error
    # (not an exception group, not a failure recorded per example).
    with pytest.raises(CheckpointError, match="weights download"):
        run(
            tmp_path / "run",
            None,
            examples,
            models={"toolset": "models", "checkpoint_dir": tmp_path / "none"},
        )
    assert read_samples(tmp_path / "run")[0] == {}


@pytest.mark.slow
def test_cli_run_exit_codes_and_sigkill_resume(tmp_path: Path) -> None:
    d, cache = tmp_path / "run", tmp_path / "cache"
    args = [
        "bench",
        "run",
        "--dataset",
        "synthetic",
        "--n",
        "4",
        "--toolset",
        "offline",
        "--out",
        str(d),
        "--cache-dir",
        str(cache),
        "--quiet",
        "--bootstrap",
        "0",
        "--concurrency",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = d / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 5:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    before = len(read_samples(d)[0])
    assert before >= 5
    assert main(args) == 0  # resumes and finishes: exit 0, nothing failed
    total = len(load_dataset_spec("synthetic", 4))
    counts = id_counts(d)
    assert len(counts) == total and set(counts.values()) == {1}
