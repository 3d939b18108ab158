"""Shared test set-up: isolation from the user's caches and the network."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# ../shared/assets/real beside the checkout (present on the team's machines and in CI).
REAL_ASSETS = REPO_ROOT.parent / "shared" / "assets" / "real"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # makes the helpers_*.py and architecture/ modules importable


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's cache or keys, or waits on a hub it cannot reach."""
    monkeypatch.setenv("REFSEG_CACHE_DIR", str(tmp_path_factory.mktemp("refseg-cache")))
    for var in ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")


@pytest.fixture
def real_image_path() -> Path:
    """A real photo from ../shared/assets/real; skips when the folder is absent."""
    path = REAL_ASSETS / "dogs.jpg"
    if not path.exists():
        pytest.skip(f"{REAL_ASSETS} not present")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray cluster for the whole session: 5 logical CPUs, for the shared 2-worker
    pool, a second 2-worker engine (a suite's) and a spare (a killed worker's replacement
    starts at once). Engines find it running and leave it up. Its workers get the isolated
    environment the autouse fixture gives each test."""
    import ray

    env = {
        "REFSEG_CACHE_DIR": str(tmp_path_factory.mktemp("ray-refseg-cache")),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    ray.init(
        num_cpus=5,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_pool(ray_cluster: None) -> Iterator[Any]:
    """A Ray engine with 2 workers shared by the session's tests, as a suite shares one across
    its sub-runs: the workers start (and import torch) once."""
    import anyio

    from bench.engines.ray_engine import RayEngine
    from bench.options import EngineOptions

    engine = RayEngine(EngineOptions(name="ray", workers=2))
    try:
        yield engine
    finally:
        anyio.run(engine.aclose)
