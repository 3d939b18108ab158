"""docs/architecture.md's "Adding a dataset", followed literally.

The recipe's code blocks are read from the document itself: the Python block is written to the
file its first line names, the TOML block is the package's entry points, and the shell block's
commands run (``refseg`` as ``python -m bench.cli``) in a folder whose ``data/shapes`` holds
generated scenes in the adapter's layout. The package is installed as ``pip install -e .``
would leave it (a ``.dist-info`` with its entry points on the path, see :mod:`helpers_plugins`),
offline. When the recipe stops working, this test fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_datasets import write_shapes
from helpers_plugins import PLUGIN_PACKAGE, plugin_env

from bench.rle import decode_rle

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def recipe_blocks() -> dict[str, list[str]]:
    """The fenced code blocks of the "Adding a dataset" section, by language."""
    text = DOC.read_text()
    start = text.index("## Adding a dataset")
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
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "my-datasets"\nversion = "0.1"\n\n{entry_points}'
    )
    return root


def test_the_recipe_is_the_test_plugin_package_module() -> None:
    (python,) = recipe_blocks()["python"]
    assert python == (PLUGIN_PACKAGE / "refseg_example_plugins" / "dataset.py").read_text()


@pytest.mark.slow  # refseg subprocesses
def test_adding_a_dataset_as_the_architecture_doc_says(tmp_path: Path) -> None:
    blocks = recipe_blocks()
    package = write_package(tmp_path / "my_project", blocks)
    env = plugin_env(tmp_path / "site", package)  # "pip install -e ."
    masks = write_shapes(tmp_path / "data" / "shapes")
    commands = [shlex.split(line) for line in blocks["bash"][0].splitlines() if line.startswith("refseg ")]
    assert [c[:3] for c in commands] == [["refseg", "bench", "datasets"], ["refseg", "bench", "run"],
                                         ["refseg", "bench", "report"]]  # fmt: skip
    outputs = []
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli", *command[1:]],
            cwd=tmp_path,
            env={**env, "REFSEG_CACHE_DIR": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    listing = outputs[0]
    assert "mask-folder (plugin): a folder of PNG images and PNG masks with their expressions" in listing
    assert "--dataset: a folder holding annotations.json" in listing
    assert "protocol mask-dice:" in listing and "Dice [dice] (headline)" in listing

    run = tmp_path / "runs" / "shapes"
    dataset = json.loads((run / "config.json").read_text())["results"]["dataset"]
    annotations = tmp_path / "data" / "shapes" / "annotations.json"
    assert (dataset["adapter"], dataset["protocol"]) == ("mask-folder", "mask-dice")
    assert dataset["files"] == [
        {
            "path": "data/shapes/annotations.json",
            "bytes": annotations.stat().st_size,
            "sha256": hashlib.sha256(annotations.read_bytes()).hexdigest(),
        }
    ]
    lines = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    images = json.loads(annotations.read_text())["images"]
    assert len(lines) == sum(len(o["expressions"]) for im in images for o in im["objects"])
    assert not any(line["failed"] for line in lines)
    for line in lines:  # the plugin's scorer: Dice from the stored mask and the PNG ground truth
        pred = decode_rle(line["mask"])
        gt = masks[line["example_id"].rsplit(":", 1)[0]]
        dice = 2 * np.count_nonzero(pred & gt) / (np.count_nonzero(pred) + np.count_nonzero(gt))
        assert line["scores"]["dice"] == pytest.approx(dice)
        assert line["tags"]["length"] == ("long" if len(line["sentence"].split()) > 3 else "short")
    summary = json.loads((run / "summary.json").read_text())
    m = summary["metrics"]
    assert (m["protocol"], m["headline"]) == ("mask-dice", "dice")
    assert m["dice"] == pytest.approx(np.mean([line["scores"]["dice"] for line in lines]))
    long = [line["scores"]["dice"] for line in lines if line["tags"]["length"] == "long"]
    assert m["breakdowns"]["length"]["long"] == {"n": len(long), "dice": pytest.approx(np.mean(long)),
                                                 "miou": pytest.approx(np.mean([
                                                     line["iou"] for line in lines
                                                     if line["tags"]["length"] == "long"]))}  # fmt: skip
    assert summary["dropped"] == {"objects_without_expressions": 2}
    report = (run / "report.md").read_text()
    assert "| Dice | Dice 95% CI | mIoU | cIoU |" in report and "## By expression length" in report
    assert f"Dice={m['dice']:.3f}" in outputs[1]  # bench run's console summary leads with the headline
