from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.options import RunOptions
from bench.runtime import public_url
from tools.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://api.siliconflow.cn/v1", "https://api.siliconflow.cn/v1"),
        ("https://user:sk-secret@host.example:8443/v1?api_key=sk-x#f", "https://host.example:8443/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_public_url_drops_credentials_and_query(url: str, public: str) -> None:
    assert public_url(url) == public


@pytest.mark.parametrize("kwargs", [{"limit": -1}, {"concurrency": 0}, {"bootstrap": -5}])
def test_bad_run_options_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        RunOptions(**kwargs)


def test_negative_limit_is_one_line_on_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "run", "--dataset", "synthetic", "--toolset", "offline", "--n", "1",
                 "--limit", "-1", "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--limit" in err and "Traceback" not in err
