"""Run folders for the viewer tests: real bench runs of the offline toolset on generated scenes."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/bench: helpers_runner
from helpers_runner import oracle_for, run, synthetic
from helpers_viewer import client_for

from bench.doubles.scripted_server import ScriptedServer
from bench.options import DataSpec, VLMOptions


@pytest.fixture(scope="session")
def made_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A loop run and a one-shot run over the same two generated scenes (made once)."""
    root = tmp_path_factory.mktemp("viewer-runs")
    examples = synthetic(2)
    run(root / "loop", None, examples, bootstrap=200)
    run(root / "oneshot", None, examples, episode={"controller": "oneshot"}, bootstrap=200)
    return {"loop": root / "loop", "oneshot": root / "oneshot"}


PLANTED_KEY = "sk-planted-viewer-key-0123456789abcdef"


@pytest.fixture(scope="session")
def agent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``agent`` run over one generated scene against the oracle VLM on a local scripted
    server (real HTTP, the real ``openai`` client), with a key planted in the environment.
    Made once; tests only read it."""
    folder = tmp_path_factory.mktemp("viewer-agent") / "agent"
    examples = synthetic(1)
    episode = {"controller": "agent", "proposer": "region_propose", "ranker": "attribute_rank"}
    with pytest.MonkeyPatch.context() as mp, ScriptedServer(policy=oracle_for(examples)) as srv:
        mp.setenv("REFSEG_VLM_API_KEY", PLANTED_KEY)
        run(folder, None, examples, spec=DataSpec("synthetic", n=1), episode=episode,
            vlm=VLMOptions(base_url=srv.base_url), bootstrap=200)  # fmt: skip
    return folder


@pytest.fixture
def runs(made_runs: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Private copies of the runs (a test may append to or damage its own)."""
    return {name: Path(shutil.copytree(path, tmp_path / name)) for name, path in made_runs.items()}


@pytest.fixture
def loop_client(runs: dict[str, Path]) -> Iterator[TestClient]:
    with client_for(runs["loop"]) as client:
        yield client


@pytest.fixture
def pair_client(runs: dict[str, Path]) -> Iterator[TestClient]:
    with client_for(runs["loop"], runs["oneshot"]) as client:
        yield client
