"""docs/architecture.md's "Adding a controller", followed literally.

The recipe's code blocks are read from the document itself: the Python block is written to the
file its first line names, the TOML block is the package's entry points, and the shell block's
commands run (``refseg`` as ``python -m bench.cli``). The package is installed as ``pip install
-e .`` would leave it (a ``.dist-info`` with its entry points on the path, see
:mod:`helpers_plugins`), offline. When the recipe stops working, this test fails.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_plugins import plugin_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def recipe_blocks() -> dict[str, list[str]]:
    """The fenced code blocks of the "Adding a controller" section, by language."""
    text = DOC.read_text()
    start = text.index("## Adding a controller")
    section = text[start : text.index("\n## ", start + 1)]
    blocks: dict[str, list[str]] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(lang, []).append(body)
    return blocks


def write_package(root: Path, blocks: dict[str, list[str]]) -> Path:
    """The recipe's package: its module (where the Python block's first line says) and a
    ``pyproject.toml`` with the recipe's entry points."""
    (python,) = blocks["python"]
    (entry_points,) = blocks["toml"]
    where = re.match(r"# (\S+\.py)\n", python)
    assert where, "the recipe's Python block names its file on its first line"
    module = root / where.group(1)
    module.parent.mkdir(parents=True)
    (module.parent / "__init__.py").write_text("")
    module.write_text(python)
    (root / "pyproject.toml").write_text(f'[project]\nname = "my-pkg"\nversion = "0.1"\n\n{entry_points}')
    return root


@pytest.mark.slow  # refseg subprocesses
def test_adding_a_controller_as_the_architecture_doc_says(tmp_path: Path) -> None:
    blocks = recipe_blocks()
    package = write_package(tmp_path / "my_project", blocks)
    env = plugin_env(tmp_path / "site", package)  # "pip install -e ."
    commands = [shlex.split(line) for line in blocks["bash"][0].splitlines() if line.startswith("refseg ")]
    assert [c[:2] for c in commands] == [["refseg", "controllers"], ["refseg", "bench"]]
    outputs = []
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli", *command[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    listing = outputs[0]
    assert "first_words  plugin   rank the expression, then its first words alone" in listing
    assert "first_words.words=1" in listing  # the option and its default, from the spec
    run = tmp_path / "runs" / "first_words"
    config = json.loads((run / "config.json").read_text())["results"]["episode"]
    assert config["controller"] == "first_words"
    assert config["controller_options"] == {"first_words": {"words": 2}}  # the command's option
    lines = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert lines and not any(line["failed"] for line in lines)
    reranked = [line for line in lines if line["iterations"] == 1]
    assert reranked and all(len(line["queries"][-1].split()) <= 2 for line in reranked)
