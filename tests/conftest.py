"""Shared test set-up: isolation from the user's caches and the network."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# ../shared/assets/real beside the checkout (present on the team's machines and in CI).
REAL_ASSETS = REPO_ROOT.parent / "shared" / "assets" / "real"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # makes tests/openai_server.py importable


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
