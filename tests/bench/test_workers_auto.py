"""``--workers auto``: one Ray worker per core, with the cluster given more CPUs than workers."""

from __future__ import annotations

import os

import pytest

from bench.cli import build_parser
from bench.cli.args import run_options
from bench.engines import ray_cluster
from bench.engines.ray_cluster import auto_workers, machine_cores, plan_workers
from bench.options import EngineOptions, RunOptions
from tools.errors import ConfigError


def test_auto_is_one_worker_per_core_of_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_cluster, "machine_cores", lambda: 6)
    options = EngineOptions(name="ray", workers="auto")
    # The run's own cluster has 7 logical CPUs (one more than workers: see connect()).
    plan = plan_workers(options, {"CPU": 7.0}, {"CPU": 7.0}, "cpu")
    assert (plan.workers, plan.cpus, plan.gpus) == (6, 1.0, 0.0)
    assert auto_workers(EngineOptions(name="ray", workers="auto", cpus_per_worker=2), {}) == 3


def test_auto_on_a_running_cluster_leaves_a_cpu_free() -> None:
    options = EngineOptions(name="ray", workers="auto", ray_address="auto")
    assert plan_workers(options, {"CPU": 16.0}, {"CPU": 12.0}, "cpu").workers == 11


def test_the_run_s_own_cluster_gets_more_cpus_than_auto_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    class FakeRay:
        def init(self, **kw: object) -> None:
            seen.update(kw)

    monkeypatch.setattr(ray_cluster, "machine_cores", lambda: 4)
    ray_cluster.connect(FakeRay(), EngineOptions(name="ray", workers="auto"))
    assert seen["num_cpus"] == 5


def test_workers_auto_from_the_command_line() -> None:
    parser = build_parser()
    ns = parser.parse_args(["bench", "run", "--out", "x", "--engine", "ray", "--workers", "auto"])
    assert run_options(ns).engine.workers == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "run", "--out", "x", "--engine", "ray", "--workers", "many"])
    with pytest.raises(ConfigError, match=r"--workers must be at least 1 \(a number, or auto\)"):
        EngineOptions(name="ray", workers=0)
    RunOptions(concurrency=1, engine=EngineOptions(name="ray", workers="auto"))  # capped at run time


def test_machine_cores_are_the_cores_this_process_may_use_not_the_hosts() -> None:
    allowed = os.sched_getaffinity(0)
    one = {min(allowed)}
    os.sched_setaffinity(0, one)
    try:
        assert machine_cores() == 1  # a container's share of the host, as `taskset` gives it
    finally:
        os.sched_setaffinity(0, allowed)
    assert machine_cores() == len(allowed)
