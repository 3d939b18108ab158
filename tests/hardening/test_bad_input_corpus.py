"""A whole bench run over bad inputs: each ends recorded, as a result or a failure with a reason."""

from __future__ import annotations

import json

import pytest
from helpers_chaos import chaos_row


@pytest.mark.slow
def test_bad_inputs_fail_with_reasons_and_the_run_completes() -> None:
    row = chaos_row("bad-input corpus")
    assert row.survived, row.problems
    out = row.details["outcomes"]
    assert len(out) == row.examples == row.injected == 17
    must_fail = {
        "truncated JPEG": "truncated",
        "zero-byte file": "no image bytes",
        "empty expression": "empty",
        "whitespace expression": "empty",
        "10,000-character expression": "characters",
        "mask size != image size": "does not match",
        "RLE that does not decode": "RLE",
    }
    for name, reason in must_fail.items():
        assert out[name].startswith("failed:") and reason in out[name], (name, out[name])
    for name in ("PNG named .jpg", "10000x10000 image", "grayscale", "RGBA", "16-bit PNG", "CMYK JPEG",
                 "EXIF-rotated photo"):  # fmt: skip
        assert out[name].startswith("ok"), (name, out[name])
    assert row.exit_code == 1 and row.failed >= len(must_fail)  # the exit code says something failed
    assert row.run_dir is not None
    summary = json.loads((row.run_dir / "summary.json").read_text())
    assert summary["counts"]["missing"] == 0 and summary["faults"]["failed_examples"] == row.failed
