"""A controller from a separate package, found through the ``refseg.controllers`` entry point,
runs from the CLI with its own options (issue 18, item 2).

``tests/plugin_package`` declares ``last_words`` (rank the expression, then its last
``words`` words) in its ``pyproject.toml``; :mod:`helpers_plugins` installs it the way an
installer would (a ``.dist-info`` with ``entry_points.txt`` on the path), offline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_plugins import install_in_process, install_plugin_package, plugin_env

from agent.controllers import available_controllers, controller_names, get_controller
from bench.cli import main
from tools.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
RUN = ["bench", "run", "--dataset", "synthetic", "--n", "2", "--toolset", "offline", "--no-cache"]
RUN += ["--controller", "last_words", "--quiet", "--bootstrap", "0"]


def _refseg(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow  # two refseg subprocesses
def test_a_plugin_controller_runs_end_to_end_with_its_option(tmp_path: Path) -> None:
    env = plugin_env(tmp_path / "site")
    out = tmp_path / "run"
    done = _refseg([*RUN, "--out", str(out), "--controller-option", "last_words.words=1"], env)
    assert done.returncode == 0, done.stderr
    lines = _lines(out)
    assert len(lines) == 34 and not any(line["failed"] for line in lines)
    second_opinions = [line for line in lines if line["stop_reason"] != "guard"]
    assert second_opinions  # some rankings were unsure: the controller ranked the last word
    for line in second_opinions:
        assert len(line["queries"][-1].split()) == 1 and line["iterations"] == 1  # words=1 reached it
    config = json.loads((out / "config.json").read_text())["results"]["episode"]
    assert config["controller"] == "last_words"
    assert config["controller_options"] == {"last_words": {"words": 1}}  # validated, recorded
    assert "| last_words |" in (out / "report.md").read_text()  # the spec's report label
    # The same folder with another value of the option: refused, in one line that says why.
    again = _refseg([*RUN, "--out", str(out), "--controller-option", "last_words.words=3"], env)
    assert again.returncode == 2
    error = again.stderr.strip().splitlines()
    assert len(error) == 1 and "different configuration" in error[0]
    assert "controller_options.last_words.words: 1 -> 3" in error[0]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "last_words.words=0",
            "controller last_words: option words: Input should be greater than or equal to 1",
        ),
        ("last_words.wrods=1", "controller last_words: option wrods: Extra inputs are not permitted"),
        (
            "no_such.words=1",
            "unknown controller 'no_such'; choose one of oneshot, loop, ground, agent, last_words",
        ),
        ("last_words=1", "--controller-option takes NAME.KEY=VALUE (e.g. agent.max_turns=4)"),
    ],
)
def test_a_bad_controller_option_is_one_line_before_any_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, message: str
) -> None:
    out = tmp_path / "run"
    with install_in_process(tmp_path / "site"):
        code = main([*RUN, "--out", str(out), "--controller-option", option])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"refseg: error: {message}")
    assert len(err) == 1 and not (out / "samples.jsonl").exists()


def test_help_choices_and_listing_come_from_the_installed_specs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "last_words" not in controller_names()
    with install_in_process(tmp_path / "site"):
        assert controller_names()[-1] == "last_words"
        with pytest.raises(SystemExit):
            main(["bench", "run", "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert main(["controllers"]) == 0
        listing = capsys.readouterr().out
    assert "last_words: rank the expression, then only its last words" in help_text
    assert "--max-turns" in help_text and "agent: most VLM turns per episode (default 8" in help_text
    assert "last_words   plugin" in listing and "last_words.words=2" in listing
    assert "last_words" not in controller_names()  # gone with the package


def test_a_broken_plugin_controller_is_reported_and_the_others_still_work(tmp_path: Path) -> None:
    package = tmp_path / "broken_package"
    package.mkdir()
    (package / "pyproject.toml").write_text(
        '[project]\nname = "broken-controllers"\nversion = "0.1"\n'
        '[project.entry-points."refseg.controllers"]\n'
        'gone = "no_such_module_anywhere:SPEC"\nnot_a_spec = "json:dumps"\n'
    )
    with install_in_process(tmp_path / "site", package):
        specs, broken = available_controllers()
        assert [s.name for s in specs] == ["oneshot", "loop", "ground", "agent"]
        assert "failed to import" in broken["gone"] and "not a ControllerSpec" in broken["not_a_spec"]
        with pytest.raises(ConfigError, match=r"controller 'gone' .* failed to import"):
            get_controller("gone")
        assert get_controller("loop").refines


def test_the_installer_writes_every_group_of_the_pyproject(tmp_path: Path) -> None:
    paths = install_plugin_package(tmp_path / "site")
    text = next((tmp_path / "site").glob("*.dist-info")).joinpath("entry_points.txt").read_text()
    assert "[refseg.controllers]\nlast_words = refseg_example_plugins.controller:LAST_WORDS" in text
    assert "[refseg.tools]\nmy_ranker = refseg_example_plugins.ranker:MyRanker" in text
    assert paths[1].joinpath("refseg_example_plugins", "__init__.py").exists()
