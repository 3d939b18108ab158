"""gRefCOCO from its JSON files: one example per (ref, sentence) of the split, the target the
union of the listed objects drawn by pycocotools (or empty for ``[-1]``); a run reports gIoU,
cIoU, N-acc and T-acc, and a no-target expression answered with an empty mask (the ground
controller's VLM saying there is no such object) scores as correct."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_formats import check_lines, polygons_mask, run_cli, summary_metrics

from bench.data import DataRequest, ExampleSet, open_dataset
from bench.data.format_fixtures import absent_phrase, scenes, write_grefcoco
from bench.doubles.scripted_server import ScriptedServer, Spec, Text


def _truths(folder: Path, split: str = "val") -> dict[str, np.ndarray]:
    """Each expected example's target, straight from the JSON files and pycocotools."""
    instances = json.loads((folder / "instances.json").read_text())
    images = {i["id"]: (i["height"], i["width"]) for i in instances["images"]}
    anns = {a["id"]: a for a in instances["annotations"]}
    out = {}
    for ref in json.loads((folder / "grefs(unc).json").read_text()):
        if ref["split"] != split:
            continue
        h, w = images[ref["image_id"]]
        mask = np.zeros((h, w), bool)
        for ann_id in ref["ann_id"]:
            if ann_id != -1:
                mask |= polygons_mask(anns[ann_id]["segmentation"], h, w)
        for k, _ in enumerate(ref["sentences"]):
            out[f"{ref['image_id']}:{ref['ref_id']}:{k}"] = mask
    return out


def test_examples_per_sentence_with_union_and_empty_targets(tmp_path: Path) -> None:
    folder = write_grefcoco(tmp_path / "grefcoco", scenes(2))
    examples = ExampleSet.of(open_dataset(str(folder), DataRequest()))
    truths = _truths(folder)
    assert [ex.example_id for ex in examples] == list(truths)  # the val split, in file order
    kinds = {ex.tags["target"] for ex in examples}
    assert kinds == {"none", "one", "several"}
    for ex in examples:
        image = ex.load_image()
        truth = ex.ground_truth((image.height, image.width))
        assert np.array_equal(truth.mask, truths[ex.example_id]) and truth.ignore is None
        assert (ex.tags["target"] == "none") == (not truth.mask.any())
    train = ExampleSet.of(open_dataset(str(folder), DataRequest(split="train")))
    assert [ex.example_id for ex in train] == list(_truths(folder, "train")) and len(train) == 2
    assert examples.record().adapter == "grefcoco" and examples.record().protocol == "gres"


def _vlm_policy(absent: set[str]) -> Any:
    """Ground's VLM: "no such object" for the expressions that have none; an answer without a
    box otherwise (grounding falls back to the ranker's choice)."""

    def answer(request: dict[str, Any]) -> Spec:
        text = " ".join(
            part.get("text", "") for m in request.get("messages", []) for part in m.get("content", [])
            if isinstance(m.get("content"), list)
        )  # fmt: skip
        return Text('{"box": null}') if any(f'"{a}"' in text for a in absent) else Text("not sure")

    return answer


@pytest.mark.slow
def test_a_no_target_expression_answered_empty_is_correct_for_n_acc(tmp_path: Path) -> None:
    items = scenes(2)
    folder = write_grefcoco(tmp_path / "grefcoco", items)
    truths = _truths(folder)
    out = tmp_path / "run"
    with ScriptedServer([], policy=_vlm_policy({absent_phrase(s) for s in items})) as srv:
        code = run_cli(folder, out, "--controller", "ground", "--tau-conf", "1", "--vlm-base-url",
                       srv.base_url, "--vlm-model", "test-vlm", "--max-fallback-rate", "1")  # fmt: skip
    assert code == 0
    ious, inter, union, found = check_lines(out, truths)
    no_target = [line for line in found if line["tags"]["target"] == "none"]
    targets = [line for line in found if line["tags"]["target"] != "none"]
    assert len(no_target) == 2 and all(
        line["stop_reason"] == "not_found" and line["pred_area"] == 0 and line["iou"] == 1.0
        for line in no_target
    )
    m = summary_metrics(out)
    assert m["protocol"] == "gres" and m["headline"] == "giou"
    assert m["n_acc"] == 1.0  # both no-target expressions answered with an empty mask
    assert m["t_acc"] == pytest.approx(np.mean([line["pred_area"] > 0 for line in targets]))
    assert m["giou"] == pytest.approx(np.mean(ious)) and m["ciou"] == pytest.approx(inter / union)
    assert m["pr@0.7"] == pytest.approx(np.mean([line["iou"] >= 0.7 for line in targets]))
    by_target = m["breakdowns"]["target"]
    assert by_target["none"]["n"] == 2 and by_target["none"]["giou"] == 1.0
    assert json.loads((out / "config.json").read_text())["results"]["episode"]["not_found"] == "empty"
    report = (out / "report.md").read_text()
    assert "N-acc" in report and "T-acc" in report and "By target" in report


@pytest.mark.slow
def test_without_a_no_target_answer_n_acc_is_reported_as_zero(tmp_path: Path) -> None:
    folder = write_grefcoco(tmp_path / "grefcoco", scenes(1))
    out = tmp_path / "run"
    assert run_cli(folder, out, "--controller", "oneshot") == 0
    m = summary_metrics(out)
    assert m["n_acc"] == 0.0 and m["t_acc"] == 1.0  # the ranker always answers with a mask
    _, inter, union, found = check_lines(out, _truths(folder))
    assert m["ciou"] == pytest.approx(inter / union) and len(found) == len(_truths(folder))
