"""``bench speed --reference`` never claims an agreement it did not check."""

from __future__ import annotations

import math

from bench.benchmarks.speed.reference import Agreement
from bench.benchmarks.speed.report import ReferenceSummary, _reference


def test_zero_masks_on_both_sides_read_not_compared_and_json_null() -> None:
    none = Agreement("default", ours=0, official=0, exact=0, min_iou=math.nan, mean_iou=math.nan)
    some = Agreement("open", ours=5, official=5, exact=5, min_iou=1.0, mean_iou=1.0)
    missing = Agreement("default", ours=0, official=3, exact=0, min_iou=math.nan, mean_iou=math.nan)
    assert none.agree is None and some.agree is True and missing.agree is False
    lines = _reference(ReferenceSummary(1.0, 1.0, [none, some, missing], None))
    assert "masks agree, default thresholds: not compared (0 masks on either side)" in lines
    assert any(ln.startswith("masks agree, open thresholds: yes (5 of 5") for ln in lines)
    assert any(ln.startswith("masks agree, default thresholds: no (0 of 0 refseg masks") for ln in lines)
    assert not any("yes (0 of 0" in ln for ln in lines)
