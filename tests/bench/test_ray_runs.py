"""The Ray engine's options, its shared VLM limit, a suite on one pool, and killed drivers."""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers_ray import RAY2, run_on
from helpers_runner import id_counts, offline_options, synthetic

from agent.episode import EpisodeConfig
from bench.chaos.runs import OfflineRun, spawn_offline
from bench.cli import main
from bench.cli.args import add_run_flags, run_options
from bench.doubles.scripted_server import ScriptedServer, Slow, Text
from bench.engines.compare import answers
from bench.engines.ray_cluster import WorkerPlan, plan_workers
from bench.engines.ray_engine import RayEngine
from bench.options import (
    DataSpec,
    EngineOptions,
    EpisodeOptions,
    ModelOptions,
    RunOptions,
    VLMOptions,
)
from bench.suite import run_suite_sync
from bench.suite_options import SuiteOptions
from tools.errors import ConfigError


def test_engine_flags_become_engine_options() -> None:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    flags = ["--engine", "ray", "--workers", "3", "--gpus-per-worker", "0.5", "--cpus-per-worker", "2"]
    ns = parser.parse_args([*flags, "--ray-address", "auto", "--concurrency", "6"])
    assert run_options(ns).engine == EngineOptions("ray", "auto", 3, 0.5, 2.0)
    assert run_options(parser.parse_args([])).engine == EngineOptions()  # defaults from the dataclass


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "2"], "--workers applies to --engine ray only; add --engine ray or drop it"),
        (["--engine", "ray", "--workers", "5", "--concurrency", "4"], "--workers 5 needs --concurrency 5"),
        (["--engine", "ray", "--workers", "0"], "--workers must be at least 1"),
        (["--engine", "ray", "--gpus-per-worker", "-1"], "--gpus-per-worker must be 0 or more"),
        (["--engine", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    ],
)
def test_bad_engine_options_are_one_line(
    args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "run", "--dataset", "synthetic", "--toolset", "offline", "--n", "1",
                 "--out", str(tmp_path / "r"), *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_workers_and_their_resources_follow_the_cluster() -> None:
    def plan(
        options: EngineOptions, total: dict[str, float], device: str | None = None, **free: float
    ) -> Any:
        return plan_workers(options, total, {**total, **free}, device)  # free: all but what is given

    gpus4 = {"CPU": 32.0, "GPU": 4.0}
    assert plan(EngineOptions("ray"), gpus4) == WorkerPlan(4, 1.0, 1.0)  # one per GPU
    assert plan(EngineOptions("ray"), gpus4, "cpu") == WorkerPlan(31, 0.0, 1.0)  # one CPU spare
    assert plan(EngineOptions("ray"), gpus4, "cpu", CPU=5.0) == WorkerPlan(4, 0.0, 1.0)  # others hold 27
    assert plan(EngineOptions("ray", gpus_per_worker=0.5), gpus4) == WorkerPlan(8, 0.5, 1.0)
    assert plan(EngineOptions("ray", workers=6), gpus4).gpus == 0.0  # too few GPUs for all: CPU
    with pytest.raises(ConfigError, match="has 4 GPUs but 6 worker"):
        plan(EngineOptions("ray", workers=6, gpus_per_worker=1), gpus4)
    with pytest.raises(ConfigError, match="has 3 CPUs but 2 worker"):
        plan(EngineOptions("ray", workers=2, cpus_per_worker=2), {"CPU": 3.0})


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_bench_run_on_ray_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["bench", "run", "--dataset", "synthetic", "--toolset", "offline", "--n", "1", "--out", str(out),
            "--quiet", "--bootstrap", "0", "--no-cache", "--engine", "ray", "--workers", "2"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and (summary["timing"]["engine"], summary["timing"]["workers"]) == ("ray", 2)
    assert f"ran {len(synthetic(1))} example(s)" in capsys.readouterr().out


def _peak_in_flight(times: list[float], seconds: float) -> int:
    """Most requests that arrived within ``seconds`` of one another: a bound on those in flight
    at once when each takes at least ``seconds`` (a slot cannot start two in that window)."""
    times = sorted(times)
    return max(sum(1 for t in times if t0 <= t < t0 + seconds) for t0 in times)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_the_vlm_sees_at_most_concurrency_calls_over_all_workers(tmp_path: Path, ray_pool: RayEngine) -> None:
    # A rewrite no scene's expression equals: each example asks once (a repeat is asked again).
    reply = Text(json.dumps({"query": "the refined red square", "rationale": "colour"}))
    with ScriptedServer(policy=lambda _req: Slow(0.15, reply)) as srv:
        options = EpisodeOptions(
            models=ModelOptions(toolset="offline", refiner="vlm"),
            episode=EpisodeConfig(controller="loop", max_iter=1, tau_conf=1.0),
            vlm=VLMOptions(base_url=srv.base_url),
        )
        examples = synthetic(2)  # two images: each worker runs one group of ~18 examples
        result = run_on(tmp_path / "run", examples, options=options, engine=ray_pool, concurrency=4)
        times = [r.t for r in srv.requests]
    assert result.summary.counts.ok == len(examples) == len(times)
    # --concurrency 4 is one limit over both workers: more than either worker holds, never more.
    assert 2 < _peak_in_flight(times, 0.15) <= 4


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_suite_runs_its_sub_runs_on_one_ray_pool_with_the_local_answers(tmp_path: Path) -> None:
    runs = {}
    for name, engine in (("local", EngineOptions()), ("ray", RAY2)):
        options = SuiteOptions(
            out=tmp_path / name,
            episode=offline_options(None),
            data=DataSpec("synthetic", n=2, per_image="first"),
            run=RunOptions(concurrency=2, bootstrap=0, quiet=True, engine=engine),
            experiments=("main",),
            max_iters=(1,),
        )
        runs[name] = run_suite_sync(options)
    assert [v.name for v in runs["ray"].runs] == ["oneshot", "loop_iter1"]
    for sub in ("oneshot", "loop_iter1"):
        assert answers(tmp_path / "ray" / sub) == answers(tmp_path / "local" / sub)
        inv = json.loads((tmp_path / "ray" / sub / "invocations.jsonl").read_text().splitlines()[-1])
        assert (inv["engine"], inv["workers"]) == ("ray", 2)


def _killed_mid_line(run: OfflineRun, at_line: int) -> None:
    proc = spawn_offline(run, kill_at_line=at_line)
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
    data = (run.run_dir / "samples.jsonl").read_bytes()
    assert data.count(b"\n") == at_line - 1 and not data.endswith(b"\n")  # a torn last line


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_local_driver_resumes_on_ray(tmp_path: Path, ray_pool: RayEngine) -> None:
    examples, spec = synthetic(2), DataSpec("synthetic", n=2)  # as OfflineRun(n=2) runs it
    run_on(tmp_path / "reference", examples)
    killed = OfflineRun(tmp_path / "run", n=2, concurrency=4)
    _killed_mid_line(killed, at_line=6)
    resumed = run_on(tmp_path / "run", examples, engine=ray_pool, spec=spec)
    assert resumed.skipped == 5 and resumed.ran == len(examples) - 5
    assert set(id_counts(tmp_path / "run").values()) == {1}
    assert answers(tmp_path / "run") == answers(tmp_path / "reference")


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_ray_driver_resumes_locally_and_its_workers_go(tmp_path: Path) -> None:
    import ray

    examples, spec = synthetic(2), DataSpec("synthetic", n=2)
    free = ray.available_resources()["CPU"]
    address = ray.get_runtime_context().gcs_address  # the child joins the session's cluster
    engine = {"name": "ray", "workers": 2, "ray_address": address}
    _killed_mid_line(OfflineRun(tmp_path / "run", n=2, concurrency=4, engine=engine), at_line=6)
    resumed = run_on(tmp_path / "run", examples, spec=spec)
    run_on(tmp_path / "reference", examples)
    counts = id_counts(tmp_path / "run")
    assert resumed.skipped == 5 and len(counts) == len(examples) and set(counts.values()) == {1}
    assert answers(tmp_path / "run") == answers(tmp_path / "reference")
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < free and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == free  # the dead driver's workers are gone
