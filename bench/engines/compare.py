"""Whether two run folders hold the same answers (the engines' same-answers check)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.samples import read_samples

# Every field an episode decides: equal fields mean the same answer, mask and path to it.
ANSWER_FIELDS = (
    "index", "image_id", "sentence", "failed", "error", "iou", "inter", "union", "gt_area", "mask",
    "iterations", "stop_reason", "queries", "conf", "gap", "chosen", "n_proposals", "rank_steps",
)  # fmt: skip
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def answers(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The episode-decided fields of each example's last record, by example id.

    An error text's object address (e.g. PIL's ``<_io.BytesIO object at 0x7f..>``) differs
    from process to process and is left out.
    """
    records, _ = read_samples(run_dir, rank_steps=True)
    out = {}
    for example_id, rec in records.items():
        fields = rec.model_dump(mode="json", include=set(ANSWER_FIELDS))
        if fields["error"]:
            fields["error"] = _ADDRESS.sub("", str(fields["error"]))
        out[example_id] = fields
    return out


def differing(run_a: str | Path, run_b: str | Path) -> list[str]:
    """Example ids whose answers differ between two runs, or that only one of them holds."""
    a, b = answers(run_a), answers(run_b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
