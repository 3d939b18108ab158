"""The run and example pages and the PNG endpoints, through the test client, on real bench runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_viewer import client_for, example_ids, png, records, text_of
from starlette.testclient import TestClient

from bench.data import load_dataset_spec
from bench.records import Summary
from bench.report.run_reader import RunView
from bench.report.tables import cost_table, run_cost_table
from bench.rle import decode_rle
from bench.viewer.images import GT_COLOUR, PRED_COLOUR


def test_run_page_shows_the_summary_json_figures(loop_client: TestClient, runs: dict[str, Path]) -> None:
    summary = json.loads((runs["loop"] / "summary.json").read_text())
    page = loop_client.get("/")
    assert page.status_code == 200
    text = text_of(page.text)
    m = summary["metrics"]
    assert f"mIoU {m['miou']:.3f} 95% CI [{m['miou_ci'][0]:.3f}, {m['miou_ci'][1]:.3f}]" in text
    assert f"cIoU {m['ciou']:.3f}" in text and f"Pr@0.9 {m['pr@0.9']:.3f}" in text
    assert "by object size" in text and "scored by protocol mask-iou" in text
    assert "source: summary.json" not in text and "summary.json" in text and "complete" in text
    view = RunView("loop", runs["loop"], Summary.model_validate(summary), np.zeros(0))
    for make in (cost_table, run_cost_table):  # the report's cost tables, without the run column
        headers, rows = make([view])
        assert " ".join(headers[1:]) in text and rows
        for row in rows:
            assert " ".join(row[1:]) in text
    tool_rows = cost_table([view])[1]
    for tool, cost in summary["costs"]["tools"].items():  # computed/joined/cached; per image
        row = next(r for r in tool_rows if r[1] == tool)
        assert row[2] == f"{cost['calls']}: {cost['computed']}/{cost['joined']}/{cost['cache_hits']}"
        assert row[3] == f"{cost['per_image']['seconds']:.4f}"
    assert "compute s/img wait s/img cold s/img" in text and "cold USD/1k expr" in text
    assert f"guard {summary['stop_reasons']['guard']}" in text
    assert len(example_ids(page.text)) == 34  # one page of 50 holds the whole run


def test_search_sort_and_pages_through_http(loop_client: TestClient, runs: dict[str, Path]) -> None:
    recs = records(runs["loop"])
    found = example_ids(loop_client.get("/", params={"q": "the green star"}).text)
    # 'jade star' was refined into 'the green star': the search covers the query history
    assert "scene-0:1:3" in found and all("the green star" in " ".join(recs[e]["queries"]) for e in found)
    by_iou = example_ids(loop_client.get("/", params={"sort": "iou", "per": "25"}).text)
    assert [recs[e]["iou"] for e in by_iou] == sorted(r["iou"] for r in recs.values())[:25]
    second = loop_client.get("/", params={"sort": "iou", "per": "25", "page": "2"}).text
    assert len(example_ids(second)) == 9 and not set(example_ids(second)) & set(by_iou)
    for bounds in ({"iou_min": "0.99"}, {"iou_max": "0.99"}):
        shown = set(example_ids(loop_client.get("/", params=bounds).text))
        lo, hi = float(bounds.get("iou_min", 0)), float(bounds.get("iou_max", 1))
        assert shown == {e for e, r in recs.items() if lo <= r["iou"] <= hi}


def test_compare_filters_degraded_examples(pair_client: TestClient, runs: dict[str, Path]) -> None:
    a, b = records(runs["loop"]), records(runs["oneshot"])
    degraded = {e for e in a if b[e]["iou"] - a[e]["iou"] < -0.01}
    page = pair_client.get("/", params={"change": "degraded"})
    assert set(example_ids(page.text)) == degraded and degraded
    assert f"degraded ({len(degraded)})" in text_of(page.text)
    assert "RUN_B" in page.text and "oneshot" in page.text


def test_example_page_timeline_and_query_history(loop_client: TestClient, runs: dict[str, Path]) -> None:
    rec = records(runs["loop"])["scene-0:1:3"]
    page = loop_client.get("/example", params={"id": "scene-0:1:3", "sort": "iou"})
    assert page.status_code == 200
    text = text_of(page.text)
    for query in rec["queries"]:  # each query with the ranking it gave
        assert f"{query} conf " in text
    timeline = page.text[page.text.index('data-testid="timeline"') :]
    for tool in ("region_propose", "attribute_rank", "refine_query"):
        assert f'<span class="evname">{tool}</span>' in timeline
    assert "guard" in timeline and "cache hit" in timeline and "episode_end" in timeline
    assert "step 2: jade star" in text and "This episode made no VLM call." in text  # rules refiner
    assert 'id="next"' in page.text and "sort=iou" in page.text  # the list's order is kept


def test_layers_are_the_image_the_ground_truth_and_the_prediction(
    loop_client: TestClient, runs: dict[str, Path]
) -> None:
    example_id = "scene-1:2:0"
    rec = records(runs["loop"])[example_id]
    ex = {e.example_id: e for e in load_dataset_spec("synthetic", 2)}[example_id]
    image = png(loop_client.get("/img/a/image.png", params={"id": example_id}).content)
    assert np.array_equal(image, ex.load_image().pixels)  # the scene, generated again
    gt = png(loop_client.get("/img/a/gt.png", params={"id": example_id}).content)
    pred = png(loop_client.get("/img/a/pred.png", params={"id": example_id}).content)
    assert gt.shape == pred.shape == (*image.shape[:2], 4)
    assert np.array_equal(gt[..., 3] > 0, ex.gt_mask()) and tuple(gt[ex.gt_mask()][0, :3]) == GT_COLOUR
    assert np.array_equal(pred[..., 3] > 0, decode_rle(rec["mask"]))
    assert tuple(pred[pred[..., 3] > 0][0, :3]) == PRED_COLOUR


def test_without_the_data_set_everything_else_still_shows(runs: dict[str, Path]) -> None:
    config_path = runs["loop"] / "config.json"
    config = json.loads(config_path.read_text())
    config["results"]["data"]["dataset"] = str(runs["loop"] / "moved-away.parquet")
    config_path.write_text(json.dumps(config))
    with client_for(runs["loop"]) as client:
        page = client.get("/example", params={"id": "scene-0:1:3"})
        image = png(client.get("/img/a/image.png", params={"id": "scene-0:1:3"}).content)
        pred = png(client.get("/img/a/pred.png", params={"id": "scene-0:1:3"}).content)
    text = text_of(page.text)
    assert page.status_code == 200 and "Image not available" in text and "moved-away.parquet" in text
    assert "attribute_rank" in text and "the green star" in text  # timeline and queries are all there
    assert (image == image[0, 0]).all() and image.shape[:2] == pred.shape[:2] and (pred[..., 3] > 0).any()


def test_unknown_examples_and_layers_are_404(loop_client: TestClient) -> None:
    assert loop_client.get("/example", params={"id": "nope"}).status_code == 404
    assert loop_client.get("/img/a/pred.png", params={"id": "nope"}).status_code == 404
    assert loop_client.get("/img/a/depth.png", params={"id": "scene-0:1:3"}).status_code == 404
    assert loop_client.get("/img/b/pred.png", params={"id": "scene-0:1:3"}).status_code == 404  # no RUN_B
    assert loop_client.get("/result/0").status_code == 404  # a run folder has no segment results


def test_side_by_side_episodes_with_run_b(pair_client: TestClient) -> None:
    page = pair_client.get("/example", params={"id": "scene-0:1:3"})
    sides = page.text.split('<section class="side"')[1:]
    assert len(sides) == 2 and 'data-side="a"' in sides[0] and 'data-side="b"' in sides[1]
    assert "refine_query" in sides[0] and "refine_query" not in sides[1]  # loop vs one-shot
    assert "/img/b/pred.png?id=scene-0%3A1%3A3" in sides[1]
    assert pair_client.get("/img/b/pred.png", params={"id": "scene-0:1:3"}).status_code == 200


@pytest.mark.parametrize("summary_json", [True, False])
def test_a_run_being_written_shows_new_lines_on_reload(runs: dict[str, Path], summary_json: bool) -> None:
    folder = runs["loop"]
    lines = (folder / "samples.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "samples.jsonl").write_bytes(b"".join(lines[:10]) + lines[10][:40])  # a line being written
    if not summary_json:
        (folder / "summary.json").unlink()
    with client_for(folder) as client:
        first = text_of(client.get("/").text)
        assert "10 of 34 examples recorded" in first and "incomplete or still being written" in first
        assert "the last line of samples.jsonl is being written" in first
        with (folder / "samples.jsonl").open("ab") as fh:
            fh.write(lines[10][40:] + b"".join(lines[11:20]) + b"{torn garbage\n")
        viewer = client.app.state.viewer  # type: ignore[attr-defined]
        viewer.a.refresh()
        viewer.summaries.get(viewer.a, wait=True)
        again = client.get("/")
    text = text_of(again.text)
    assert "20 of 34 examples recorded" in text and "1 unreadable line(s) of samples.jsonl skipped" in text
    assert len(example_ids(again.text)) == 20
    recs = [r for r in records_prefix(lines[:20])]
    miou = sum(r["iou"] for r in recs) / len(recs)
    assert f"mIoU {miou:.3f}" in text and "over 20 examples" in text  # live: summary.json is stale


def records_prefix(lines: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]
