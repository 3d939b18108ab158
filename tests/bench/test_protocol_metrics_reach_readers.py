"""A plugin's protocol (tests/plugin_package: the mask-folder adapter, scored by mean Dice with a
breakdown by expression length) reaches every reader without an edit to them: `refseg view`'s
run page, the report's tables, the paired comparison on its headline; and a reader without the
plugin says so instead of scoring the run another way."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from html import unescape
from importlib import invalidate_caches
from pathlib import Path

import pytest
from helpers_datasets import write_shapes
from helpers_plugins import install_in_process
from starlette.testclient import TestClient

from bench.cli import main
from bench.viewer import ViewerOptions, create_app


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def plugin_runs(tmp_path: Path) -> Iterator[tuple[Path, Path, list[Path]]]:
    """A one-shot and a loop run of the plugin's data set, with the plugin installed (its
    paths on ``sys.path``, the third item) while the test runs."""
    write_shapes(tmp_path / "shapes")
    with install_in_process(tmp_path / "site") as paths:
        runs = []
        for controller in ("oneshot", "loop"):
            out = tmp_path / controller
            args = ["bench", "run", "--dataset", str(tmp_path / "shapes"), "--toolset", "offline",
                    "--controller", controller, "--out", str(out), "--quiet", "--bootstrap", "100",
                    "--no-cache"]  # fmt: skip
            assert main(args) == 0
            runs.append(out)
        yield runs[0], runs[1], paths


@pytest.mark.slow
def test_the_viewer_shows_the_protocols_metrics_and_breakdowns(
    plugin_runs: tuple[Path, Path, list[Path]],
) -> None:
    run = plugin_runs[1]
    m = json.loads((run / "summary.json").read_text())["metrics"]
    client = TestClient(create_app(ViewerOptions(run=run, preload=False)), base_url="http://127.0.0.1")
    page = client.get("/")
    text = _text(page.text)
    assert "scored by protocol mask-dice" in text
    assert f"Dice {m['dice']:.3f} 95% CI [{m['dice_ci'][0]:.3f}, {m['dice_ci'][1]:.3f}]" in text
    assert 'data-metric="dice"' in page.text and f"cIoU {m['ciou']:.3f}" in text
    assert "Pr@0.5" not in text  # not this protocol's
    long = m["breakdowns"]["length"]["long"]
    assert "by expression length" in text and f"long Dice {long['dice']:.3f}" in text
    assert f"(n={long['n']})" in text


@pytest.mark.slow
def test_reports_and_the_paired_comparison_use_the_headline(
    plugin_runs: tuple[Path, Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    oneshot, loop, _ = plugin_runs
    capsys.readouterr()
    assert main(["bench", "report", str(oneshot), str(loop), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert "loop - oneshot: Dice " in printed  # paired on the protocol's headline
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| Dice | Dice 95% CI | mIoU | cIoU |" in report and "## By expression length" in report
    assert "| loop vs oneshot | 2 |" in report and "| Dice |" in report.split("## Paired comparison")[1]


@pytest.mark.slow
def test_without_the_plugin_a_run_is_shown_by_its_keys_and_not_rescored(
    plugin_runs: tuple[Path, Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run, installed = plugin_runs
    m = json.loads((run / "summary.json").read_text())["metrics"]
    paths = [str(p) for p in installed]  # uninstalled for a while: a machine without the plugin
    for p in paths:
        sys.path.remove(p)
    invalidate_caches()
    try:
        client = TestClient(create_app(ViewerOptions(run=run, preload=False)), base_url="http://127.0.0.1")
        text = _text(client.get("/").text)
        assert f"dice {m['dice']:.3f}" in text  # the summary's own numbers, by key
        capsys.readouterr()
        assert main(["bench", "report", str(run), "--bootstrap", "10"]) == 2  # rescoring needs it
        assert (
            "protocol 'mask-dice' is not defined by any installed dataset adapter" in capsys.readouterr().err
        )
    finally:
        sys.path[:0] = paths
        invalidate_caches()
