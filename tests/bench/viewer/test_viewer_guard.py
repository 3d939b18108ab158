"""The run page's guard section: the frontier (replayed from the run at 1/1, or from the 1/1 run
beside it) with where the run sits, and the calibration; both figures are served as PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_runner import run, synthetic
from helpers_viewer import client_for, png, text_of


@pytest.fixture(scope="module")
def suite_like(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """As the suite lays them out: loop_iter3 and loop_ask side by side; a lone run elsewhere."""
    root = tmp_path_factory.mktemp("guard-runs")
    examples = synthetic(2)
    run(root / "suite" / "loop_iter3", None, examples)
    run(root / "suite" / "loop_ask", None, examples, episode={"tau_conf": 1.0, "tau_gap": 1.0})
    run(root / "alone" / "loop", None, examples, episode={"tau_conf": 0.6, "tau_gap": 0.1})
    return {
        "loop_iter3": root / "suite" / "loop_iter3",
        "loop_ask": root / "suite" / "loop_ask",
        "alone": root / "alone" / "loop",
    }


def _page(client: Any, which: str = "a") -> Any:
    """The run page once its guard section is computed (the figure's request waits for it; the
    page itself never does)."""
    client.get(f"/plot/{which}/calibration.png")
    return client.get("/")


@pytest.mark.slow
def test_a_run_beside_its_always_ask_run_sits_on_the_frontier(suite_like: dict[str, Path]) -> None:
    with client_for(suite_like["loop_iter3"]) as client:
        page = _page(client)
        assert page.status_code == 200
        text = text_of(page.text)
        assert "Cost-quality frontier" in text and "replayed from loop_ask" in text
        assert "this run 0.5 0.2" in text  # its thresholds' row
        assert 'src="/plot/a/frontier.png"' in page.text and 'src="/plot/a/calibration.png"' in page.text
        assert "Guard calibration" in text and "attribute_rank" in text
        for name in ("frontier", "calibration"):
            pixels = png(client.get(f"/plot/a/{name}.png").content)
            assert pixels.shape[0] > 300 and pixels.std() > 0
        assert client.get("/plot/a/other.png").status_code == 404
        assert client.get("/plot/b/frontier.png").status_code == 404  # no RUN_B


def test_the_always_ask_run_shows_its_own_frontier(suite_like: dict[str, Path]) -> None:
    with client_for(suite_like["loop_ask"]) as client:
        text = text_of(_page(client).text)
    assert "replayed from loop_ask" in text and "default thresholds 0.5 0.2" in text
    assert "always asks 1 1" in text and "one-shot 0 0" in text


def test_a_run_with_no_always_ask_run_beside_it_says_how_to_get_one(suite_like: dict[str, Path]) -> None:
    with client_for(suite_like["alone"]) as client:
        text = text_of(_page(client).text)
        assert client.get("/plot/a/frontier.png").status_code == 404
        assert client.get("/plot/a/calibration.png").status_code == 200
    assert "no frontier: a loop run at 1/1 of this configuration replays every threshold" in text
    assert "--tau-conf 1 --tau-gap 1" in text and "Guard calibration" in text


def test_two_runs_each_get_their_section(suite_like: dict[str, Path]) -> None:
    with client_for(suite_like["loop_iter3"], suite_like["alone"]) as client:
        client.get("/plot/b/calibration.png")
        html = _page(client).text
        assert 'src="/plot/b/calibration.png"' in html and html.count('class="guard"') == 2
        assert client.get("/plot/b/calibration.png").status_code == 200


def test_the_page_does_not_wait_and_old_records_say_why_there_is_nothing(
    suite_like: dict[str, Path], tmp_path: Path
) -> None:
    with client_for(suite_like["loop_iter3"]) as client:
        first = text_of(client.get("/").text)  # computing, or already done: never blocking
        assert "computing the frontier" in first or "Cost-quality frontier" in first
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "summary.json"):
        (old / name).write_bytes((suite_like["alone"] / name).read_bytes())
    lines = [json.loads(line) for line in (suite_like["alone"] / "samples.jsonl").read_text().splitlines()]
    (old / "samples.jsonl").write_text("".join(json.dumps({**r, "schema_version": 1}) + "\n" for r in lines))
    with client_for(old) as client:
        text = text_of(client.get("/").text)
        assert client.get("/plot/a/calibration.png").status_code == 404
    assert "written before ranking steps carried conf, gap and candidate scores" in text
