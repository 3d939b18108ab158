"""``bench ground`` ends with a labelled line per controller, not a raw dict: the SAM-path
counts come from other scenes and random weights, and say so."""

from __future__ import annotations

from bench.benchmarks.ground import format_encodes


def test_the_sam_path_counts_are_labelled_and_set_apart_from_the_table() -> None:
    figures = {
        "ground encodes/image": 1.0,
        "ground sam_prompt calls/image": 1.0,
        "ground stops": {"max_iter": 3},
        "agent encodes/image": 1.0,
        "agent sam_prompt calls/image": 2 / 3,
        "agent stops": {"agent_submit": 2, "guard": 1},
    }
    text = format_encodes(figures, 3)
    lines = text.splitlines()
    assert "{" not in text and "': " not in text  # no Python dict repr
    assert lines[0].startswith("SAM path (a tiny random-weight SAM as proposer") and "3 scenes" in lines[0]
    assert lines[1].startswith(
        "  ground: 1.00 encodes/image, 1.00 sam_prompt calls/image; stop reasons max_iter 3"
    )
    assert lines[2].startswith(
        "  agent: 1.00 encodes/image, 0.67 sam_prompt calls/image; stop reasons agent_submit 2, guard 1"
    )
    assert all("not the table's" in ln for ln in lines[1:])
