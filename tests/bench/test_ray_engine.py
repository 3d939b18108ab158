"""The Ray engine: same answers as the local engine, one writer, workers that die, limits.

One local cluster and one 2-worker engine serve the session (``ray_pool`` in tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from helpers_ray import RAY2, last_invocation, run_on, trace_events
from helpers_runner import id_counts, sample_lines, synthetic

from agent.episode import EpisodeConfig
from bench.data import load_dataset_spec
from bench.data.examples import ExampleSet
from bench.data.fixtures import demo_rows, write_refcocom_parquet
from bench.engines.compare import answers
from bench.engines.ray_engine import RayEngine
from bench.engines.ray_worker import GroupResult
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions
from tools.clip_loading import TINY_CLIP_NAME
from tools.errors import CheckpointError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def test_ray_gives_the_local_answers_and_one_writer_writes_them(tmp_path: Path, ray_pool: RayEngine) -> None:
    examples = synthetic(3)
    run_on(tmp_path / "local", examples)
    result = run_on(tmp_path / "ray", examples, engine=ray_pool)
    local, ray = answers(tmp_path / "local"), answers(tmp_path / "ray")
    assert len(ray) == len(examples) and ray == local  # every IoU, mask and query history
    assert set(id_counts(tmp_path / "ray").values()) == {1}
    assert trace_events(tmp_path / "ray") == trace_events(tmp_path / "local")
    inv = last_invocation(tmp_path / "ray")
    assert (inv["engine"], inv["workers"], inv["worker_deaths"]) == ("ray", 2, 0)
    assert inv["computed"]["region_propose"] == 3  # SAM's stand-in runs once per image
    assert result.summary.timing.engine == "ray" and result.summary.timing.workers == 2
    configs = [json.loads((tmp_path / r / "config.json").read_text()) for r in ("local", "ray")]
    assert configs[0]["results"] == configs[1]["results"]  # the engine is not a result setting


def test_tiny_real_sam_and_clip_give_identical_masks_on_both_engines(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    options = EpisodeOptions(
        models=ModelOptions(
            weights="random",
            clip_model=TINY_CLIP_NAME,
            points_per_side=4,
            tool_options={"sam_propose": {"config": "tiny"}},
        ),
        episode=EpisodeConfig(controller="loop", max_iter=1, tau_conf=1.0),
        cache=CacheOptions(enabled=False),  # both engines compute everything
    )
    examples = load_dataset_spec("synthetic", 2, "first")
    run_on(tmp_path / "local", examples, options=options)
    run_on(tmp_path / "ray", examples, options=options, engine=ray_pool)
    local, ray = answers(tmp_path / "local"), answers(tmp_path / "ray")
    assert ray == local and all(not r["failed"] and r["iterations"] == 1 for r in ray.values())
    inv = last_invocation(tmp_path / "ray")
    assert inv["computed"]["sam_propose"] == 2 and inv["computed"]["clip_rank"] == 4
    assert inv["image_encodes"] == 2 == last_invocation(tmp_path / "local")["image_encodes"]


def test_a_killed_worker_s_unfinished_examples_are_redone_by_its_replacement_none_lost_or_twice(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    examples = synthetic(4)
    run_on(tmp_path / "local", examples)
    killed: list[int] = []

    def kill_after_first_example(done: int, result: GroupResult) -> None:
        if done == 1:  # the first example back: the rest of its image group dies with its worker
            killed.append(result.pid)
            os.kill(result.pid, signal.SIGKILL)

    ray_pool.on_group = kill_after_first_example
    try:
        run_on(tmp_path / "ray", examples, engine=ray_pool)
    finally:
        ray_pool.on_group = None
    counts = id_counts(tmp_path / "ray")
    assert killed and len(counts) == len(examples) and set(counts.values()) == {1}
    assert answers(tmp_path / "ray") == answers(tmp_path / "local")
    events = trace_events(tmp_path / "ray")
    assert events == trace_events(tmp_path / "local")  # the dead worker's partial traces never came
    inv = last_invocation(tmp_path / "ray")
    assert inv["worker_deaths"] == 1 and inv["groups_redone"] >= 1 and inv["workers"] == 2


def test_an_image_that_kills_every_worker_is_recorded_failed_and_the_run_goes_on(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    examples = synthetic(2)
    poison = examples[0].image_id  # decoding this image ends the worker's process, every time
    deadly = SimpleNamespace(load=functools.partial(os._exit, 3))
    examples = [replace(ex, image_ref=deadly) if ex.image_id == poison else ex for ex in examples]
    run_on(tmp_path / "ray", examples, engine=ray_pool)
    records = {r["example_id"]: r for r in sample_lines(tmp_path / "ray")}
    assert len(records) == len(examples) and set(id_counts(tmp_path / "ray").values()) == {1}
    died = [r for r in records.values() if r["image_id"] == poison]
    assert died and all(r["failed"] and "died 3 times" in r["error"] and r["gt_area"] > 0 for r in died)
    assert not any(r["failed"] for r in records.values() if r["image_id"] != poison)
    inv = last_invocation(tmp_path / "ray")
    assert inv["worker_deaths"] == 3 and inv["groups_redone"] == 2


def test_a_worker_without_its_checkpoint_stops_the_run_with_the_local_error(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    options = EpisodeOptions(models=ModelOptions(checkpoint_dir=tmp_path / "no-weights"))
    examples = synthetic(1)
    errors = []
    for name, engine in (("local", None), ("ray", ray_pool)):
        with pytest.raises(CheckpointError) as info:
            run_on(tmp_path / name, examples, options=options, engine=engine)
        errors.append(str(info.value))
        assert not (tmp_path / name / "samples.jsonl").read_bytes()
    assert errors[0] == errors[1] and "\n" not in errors[1] and "refseg weights download" in errors[1]


def test_a_finished_run_resumes_without_starting_workers(tmp_path: Path) -> None:
    examples = synthetic(1)
    run_on(tmp_path / "run", examples)
    engine = RayEngine(RAY2)
    try:
        again = run_on(tmp_path / "run", examples, engine=engine, engine_options=RAY2)
    finally:
        anyio.run(engine.aclose)
    inv = last_invocation(tmp_path / "run")
    assert again.ran == 0 and again.skipped == len(examples)
    assert (inv["engine"], inv["workers"], inv["engine_start_s"]) == ("ray", 0, 0.0)


def test_data_set_rows_travel_as_bytes_and_fail_the_same(tmp_path: Path, ray_pool: RayEngine) -> None:
    rows = demo_rows(n_images=3)
    rows[1]["image"] = b"\x89PNG\r\n\x1a\n this is not an image"  # corrupt bytes
    spec = DataSpec(dataset=str(write_refcocom_parquet(tmp_path / "val.parquet", rows)))
    examples = spec.load()
    run_on(tmp_path / "local", examples, spec=spec)
    run_on(tmp_path / "ray", examples, spec=spec, engine=ray_pool)
    ray = answers(tmp_path / "ray")
    assert ray == answers(tmp_path / "local")
    broken = [r for r in ray.values() if r["image_id"] == "2"]
    assert broken and all(r["failed"] and r["error"] for r in broken)


class _SlowToRead(ExampleSet):
    """Examples whose second pass (the run's) waits before its third image group until a
    record has come back, at most 60 s, and notes whether one had."""

    def __init__(self, examples: list[Any], returned: threading.Event):
        super().__init__(examples)
        self.returned, self.passes, self.record_before_third = returned, 0, False

    def groups(self) -> Iterator[list[Any]]:
        self.passes += 1
        for k, group in enumerate(super().groups()):
            if self.passes == 2 and k == 2:
                self.record_before_third = self.returned.wait(60)
            yield group


def test_the_driver_sends_examples_while_it_still_reads_the_data_set(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    returned = threading.Event()
    source = _SlowToRead(synthetic(4), returned)
    ray_pool.on_group = lambda written, result: returned.set()
    try:
        result = run_on(tmp_path / "ray", source, engine=ray_pool)
    finally:
        ray_pool.on_group = None
    assert source.record_before_third  # the first groups ran before the rest was read
    assert result.ran == len(source) and set(id_counts(tmp_path / "ray").values()) == {1}
    assert last_invocation(tmp_path / "ray")["images_run"] == 4
