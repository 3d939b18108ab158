"""Cache keys: change with checkpoint, tool version and output-changing args; not with speed knobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_chaos import chaos_row

from bench.chaos.runs import OfflineRun, run_offline
from bench.data.stream import index_examples
from bench.options import DataSpec
from bench.run_folder import result_config
from bench.runtime import Runtime, build_runtime
from cache.keys import make_key
from tools.base import ToolSettings, Workspace
from tools.sam_loading import TINY_SAM_CONFIG, build_sam_from_config
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import Image


def _tiny_checkpoint(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    torch.save(build_sam_from_config(TINY_SAM_CONFIG).state_dict(), path)


def _key(tool: SamPropose, **params: object) -> str:
    ws = Workspace(Image.from_array(np.full((32, 40, 3), 90, np.uint8)), "the box")
    p = SamProposeParams(**params)
    return make_key(tool.name, tool.version, tool.fingerprint(), tool.key_inputs(ws, p), tool.key_args(p))


def _sam(path: Path) -> SamPropose:
    return SamPropose(ToolSettings(sam_checkpoint=path, options={"sam_propose": {"config": "tiny"}}))


def test_sam_key_follows_checkpoint_version_and_output_args(tmp_path: Path) -> None:
    ckpt = tmp_path / "sam_tiny.pth"
    _tiny_checkpoint(ckpt, seed=1)
    base = _key(_sam(ckpt))
    assert _key(_sam(ckpt)) == base  # stable
    assert _key(_sam(ckpt), points_per_batch=7) == base  # speed only
    assert _key(_sam(ckpt), pred_iou_thresh=0.5) != base  # changes which masks survive
    _tiny_checkpoint(ckpt, seed=2)  # the same file name, other weights
    assert _key(_sam(ckpt)) != base

    class Bumped(SamPropose):
        version = "999"

    assert _key(
        Bumped(ToolSettings(sam_checkpoint=ckpt, options={"sam_propose": {"config": "tiny"}}))
    ) != _key(_sam(ckpt))


def _runtime(episode: dict[str, object], vlm: dict[str, object], concurrency: int = 8) -> Runtime:
    run = OfflineRun(Path("unused"), None, episode=episode, vlm=vlm, concurrency=concurrency)
    return build_runtime(run.options().episode)


def test_concurrency_and_timeouts_are_not_part_of_results_or_keys(tmp_path: Path) -> None:
    spec = DataSpec("synthetic", n=1)
    source = spec.open()
    examples = (source.record(), index_examples(source))
    agent = {"controller": "agent"}
    url = {"base_url": "http://127.0.0.1:9/v1"}
    a = _runtime(agent, {**url, "timeout_s": 5.0, "max_retries": 1})
    b = _runtime(agent, {**url, "timeout_s": 60.0, "max_retries": 6}, concurrency=2)
    c = _runtime({**agent, "controller_options": {"agent": {"max_turns": 3}}}, url)
    try:
        assert result_config(a, spec, *examples) == result_config(b, spec, *examples)
        assert result_config(a, spec, *examples) != result_config(c, spec, *examples)
    finally:
        for rt in (a, b, c):
            rt.close()
    # Two runs that differ only in concurrency share every cache entry and every result.
    cache = tmp_path / "cache"
    oneshot = {"controller": "oneshot"}
    run_offline(OfflineRun(tmp_path / "one", cache, n=1, episode=oneshot))
    run_offline(OfflineRun(tmp_path / "two", cache, n=1, episode=oneshot, concurrency=1))

    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s1["metrics"] == s2["metrics"]
    for tool in ("region_propose", "attribute_rank"):
        assert s2["costs"]["tools"][tool]["cache_hit_rate"] == 1.0


@pytest.mark.slow
def test_damaged_cache_entries_are_recomputed_to_the_same_results() -> None:
    row = chaos_row("corrupt cache entries")
    assert row.survived, row.problems
    assert row.injected > 0 and row.detected == row.injected  # each caught: checksum or pickle refusal


class _Payload:
    """Unpickling this runs a command: a run folder must never unpickle anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_run_folder_with_a_pickled_ious_file_runs_no_code(tmp_path: Path) -> None:
    from bench.report.run_reader import load_run

    run_dir = tmp_path / "run"
    run_offline(OfflineRun(run_dir, None, n=1, episode={"controller": "oneshot"}))
    good = np.load(run_dir / "ious.npy", allow_pickle=False)
    marker = tmp_path / "pwned"
    np.save(run_dir / "ious.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    view = load_run(run_dir)
    assert not marker.exists()
    np.testing.assert_array_equal(view.ious, good)  # rebuilt from samples.jsonl


@pytest.mark.slow
def test_two_processes_sharing_a_cache_get_one_process_results() -> None:
    row = chaos_row("shared cache, 2 processes")
    assert row.survived, row.problems
    assert row.detected == row.injected == 2  # both runs' metrics equal a lone run's
