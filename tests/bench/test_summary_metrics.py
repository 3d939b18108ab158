"""``summary.json``'s metrics: what counts in them and what does not."""

from __future__ import annotations

import pytest

from bench.data.protocols import MASK_IOU
from bench.records import RunConfig, SampleRecord
from bench.summary import build_summary


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
