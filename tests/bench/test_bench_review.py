"""Review fixes of the bench: config replaced when nothing was recorded, one invocation per run
folder, size buckets without unknown areas, stale summaries, a bad --out in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_runner import id_counts, run, synthetic

from bench.cli import main
from bench.data.protocols import MASK_IOU
from bench.records import RunConfig, SampleRecord
from bench.report import load_run
from bench.samples import SampleWriter
from bench.summary import build_summary
from tools.errors import CheckpointError, ConfigError


def test_new_config_replaces_one_that_recorded_nothing(tmp_path: Path) -> None:
    examples, d = synthetic(1), tmp_path / "run"
    # The first invocation stops on a missing checkpoint before any example is recorded ...
    with pytest.raises(CheckpointError):
        run(d, None, examples, models={"toolset": "models", "checkpoint_dir": tmp_path / "none"})
    # ... so other options (here: the toolset its message suggests) may take the folder over.
    res = run(d, None, examples, episode={"controller": "oneshot"})
    assert res.ran == len(examples) and any("config.json" in n for n in res.notes)
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    assert config["results"]["episode"]["proposer"] == "region_propose"
    # Once results exist, a different configuration is refused as before.
    with pytest.raises(ConfigError, match="controller"):
        run(d, None, examples, episode={"controller": "loop"})


def test_second_invocation_on_one_run_folder_is_refused(tmp_path: Path) -> None:
    examples, d = synthetic(1), tmp_path / "run"
    d.mkdir()
    holder = SampleWriter(d)  # another invocation, still running
    try:
        with pytest.raises(ConfigError, match="in use"):
            run(d, None, examples)
    finally:
        holder.close()
    run(d, None, examples)
    assert set(id_counts(d).values()) == {1}


def test_examples_without_a_known_area_are_in_no_size_bucket() -> None:
    base = {"index": 0, "image_id": "1", "sentence": "x", "stop_reason": "guard", "inter": 0, "union": 0}
    records = {
        "a": {**base, "example_id": "a", "iou": 0.8, "gt_area": 20_000, "bucket": "large", "failed": False},
        # A corrupt ground-truth mask: failed, IoU 0, area unknown.
        "b": {**base, "example_id": "b", "iou": 0.0, "gt_area": 0, "bucket": None, "failed": True},
    }
    typed = {k: SampleRecord.model_validate(v) for k, v in records.items()}
    summary = build_summary(typed, ["a", "b"], [], RunConfig(), MASK_IOU, bootstrap=0).model_dump(mode="json")
    assert summary["metrics"]["n"] == 2 and summary["metrics"]["miou"] == pytest.approx(0.4)
    buckets = summary["metrics"]["breakdowns"]["size"]
    assert buckets["small"] == {"n": 0, "miou": None}
    assert buckets["large"] == {"n": 1, "miou": pytest.approx(0.8)}


def test_report_recomputes_a_summary_older_than_the_samples(tmp_path: Path) -> None:
    examples, d = synthetic(2), tmp_path / "run"
    run(d, None, examples, limit=2)
    old = (d / "summary.json").read_bytes()
    run(d, None, examples, limit=2)
    # An interrupted invocation: lines were appended, summary.json is the previous one.
    (d / "summary.json").write_bytes(old)
    t = (d / "samples.jsonl").stat().st_mtime_ns
    os.utime(d / "summary.json", ns=(t - 10**9, t - 10**9))
    assert load_run(d).summary.counts.examples == 4


def test_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a-file"
    target.write_text("x", encoding="utf-8")
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    code = main([*argv, "--no-cache", "--quiet", "--bootstrap", "0", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("refseg: error:") and "Traceback" not in err
