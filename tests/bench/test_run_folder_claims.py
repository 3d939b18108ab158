"""Who may write a run folder: one invocation at a time, and a configuration that recorded
nothing gives way to the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_runner import id_counts, run, synthetic

from bench.samples import SampleWriter
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
