"""The viewer's pages say what the run was: random weights on every page, sizes as W x H,
faults by name, and (comparing two runs) the paired difference with its interval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers_runner import run, synthetic
from helpers_viewer import client_for, example_ids, text_of
from starlette.testclient import TestClient

from bench.cli import main
from bench.options import DataSpec
from bench.records import Summary
from bench.viewer.pages import fault_chips


def test_a_model_run_page_and_example_page_carry_no_random_mark(loop_client: TestClient) -> None:
    page = loop_client.get("/")
    assert page.status_code == 200 and 'id="random-weights"' not in page.text
    example = loop_client.get("/example", params={"id": example_ids(page.text)[0]})
    assert 'id="random-weights"' not in example.text


def test_the_example_page_gives_the_image_size_width_first(loop_client: TestClient) -> None:
    example_id = example_ids(loop_client.get("/").text)[0]
    text = text_of(loop_client.get("/example", params={"id": example_id}).text)
    assert "image 320×240" in text  # generated scenes are 240 high, 320 wide


@pytest.mark.slow  # a real bench run with the tiny SAM and CLIP (torch)
def test_every_page_of_a_random_weight_run_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "smoke"
    models = {"toolset": "models", "weights": "random", "sam_model": "tiny", "clip_model": "tiny"}
    run(folder, None, synthetic(1)[:2], spec=DataSpec("synthetic", n=1), models=models)
    with client_for(folder) as client:
        page = client.get("/")
        banner = re.search(r'id="random-weights">([^<]+)<', page.text)
        assert banner is not None and "Random weights (--weights random): smoke." in banner.group(1)
        example = client.get("/example", params={"id": example_ids(page.text)[0]})
        assert 'id="random-weights"' in example.text


def test_faults_show_by_name_and_kind_never_as_python_dicts() -> None:
    summary = Summary.model_validate(
        {"faults": {"fallbacks": 3, "fallbacks_by_kind": {"http_429": 2, "timeout": 1}, "tool_errors": 2,
                    "vlm_errors_by_status": {"429": 2}}}
    )  # fmt: skip
    chips = fault_chips(summary)
    assert chips == [
        "fallbacks 3",
        "fallbacks by kind: http_429 2, timeout 1",
        "tool errors 2",
        "vlm errors by status: 429 2",
    ]
    assert not any("{" in c for c in chips)


@pytest.mark.slow
def test_the_compare_page_gives_the_paired_difference_as_bench_report_does(
    pair_client: TestClient, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = text_of(pair_client.get("/").text)
    assert (
        main(["bench", "report", str(runs["loop"]), str(runs["oneshot"]), "--out", str(runs["loop"] / "r")])
        == 0
    )
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("oneshot - loop: mIoU"))
    assert "Paired difference (the examples both runs hold; 95% CI by bootstrap over images" in text
    assert line in text  # the same numbers, interval and counts
    assert "(only 2 images: a rough interval)" in text  # the runs' own intervals too
