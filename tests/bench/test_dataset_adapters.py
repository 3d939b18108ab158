"""Dataset adapters: how `--dataset` finds one, what `refseg bench datasets` lists, what a run
records about its data, and that a run streams its examples instead of holding them."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from helpers_runner import offline_runtime

from bench.cli import main
from bench.data import (
    DataRequest,
    DataSource,
    Example,
    adapter_infos,
    load_dataset_spec,
    open_dataset,
    resolve,
)
from bench.data.fixtures import demo_rows, write_refcocom_parquet
from bench.data.refcocom import RefcocomAdapter
from bench.data.synthetic import SyntheticAdapter, scene_examples
from bench.data_errors import DatasetError
from bench.options import DataSpec, RunOptions
from bench.runner import run_examples
from tools.offline.scenes import generate_scene


def test_names_aliases_forced_adapters_and_local_layouts(tmp_path: Path) -> None:
    parquet = write_refcocom_parquet(tmp_path / "val.parquet", demo_rows(1))
    assert [type(a).__name__ for a, _ in (resolve("synthetic"), resolve("refcoco-m"))] == [
        "SyntheticAdapter",
        "RefcocomAdapter",
    ]
    assert resolve("moondream/refcoco-m")[1] == "moondream/refcoco-m"  # the hub alias
    adapter, source = resolve(str(parquet))  # recognised by its columns
    assert isinstance(adapter, RefcocomAdapter) and source == str(parquet)
    assert isinstance(resolve(str(tmp_path))[0], RefcocomAdapter)  # a folder of shards
    adapter, source = resolve("refcoco-m:someone/a-copy")  # forced onto a hub copy
    assert isinstance(adapter, RefcocomAdapter) and source == "someone/a-copy"


def test_what_no_adapter_claims_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DatasetError, match=r"no dataset adapter reads this file.*refcoco-m: .*ADAPTER:"):
        resolve(str(junk))
    with pytest.raises(DatasetError, match=r"no such file or folder; name one of synthetic, refcoco-m"):
        resolve(str(tmp_path / "missing.parquet"))
    with pytest.raises(DatasetError, match=r"unknown data set 'refclef'; name one of"):
        resolve("refclef")
    with pytest.raises(
        DatasetError, match=r"no dataset adapter knows this hub name.*refcoco-m:someone/RefCLEF"
    ):
        resolve("someone/RefCLEF")
    with pytest.raises(DatasetError, match="no dataset adapter 'nope'"):
        from bench.data import adapter_named

        adapter_named("nope")


def test_bench_datasets_lists_adapters_with_their_protocols(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "datasets"]) == 0
    text = capsys.readouterr().out
    assert "synthetic (builtin): generated scenes" in text and "refcoco-m (builtin): RefCOCO-M" in text
    assert "default split: validation" in text and "protocol mask-iou:" in text
    assert "mIoU [miou] (headline): mean IoU over expressions" in text and "Pr@0.9 [pr@0.9]" in text
    assert main(["bench", "datasets", "--json"]) == 0
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    assert listed["refcoco-m"]["aliases"] == ["moondream/refcoco-m"]
    protocol = listed["refcoco-m"]["protocol"]
    assert protocol["headline"] == "miou" and [m["key"] for m in protocol["metrics"]][:2] == ["miou", "ciou"]
    assert protocol["breakdowns"] == [{"key": "size", "label": protocol["breakdowns"][0]["label"],
                                       "groups": ["small", "medium", "large"]}]  # fmt: skip
    assert {i.name for i in adapter_infos()} >= {"synthetic", "refcoco-m"}


@pytest.mark.slow
def test_a_run_records_the_adapter_protocol_split_and_file_digests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, rows = tmp_path / "data", demo_rows(3)
    shards = [
        write_refcocom_parquet(folder / f"validation-0000{i}-of-00002.parquet", rows[i : i + 1])
        for i in (0, 1)
    ]
    write_refcocom_parquet(folder / "train-00000-of-00001.parquet", rows[2:])  # another split: not read
    out = tmp_path / "run"
    args = ["bench", "run", "--dataset", str(folder), "--toolset", "offline", "--out", str(out),
            "--quiet", "--bootstrap", "0", "--no-cache"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "config.json").read_text())["results"]
    assert results["data"]["split"] is None  # what was asked: the adapter's default
    dataset = results["dataset"]
    assert {k: dataset[k] for k in ("adapter", "protocol", "source", "split")} == {
        "adapter": "refcoco-m",
        "protocol": "mask-iou",
        "source": str(folder),
        "split": "validation",
    }
    assert dataset["files"] == [
        {"path": str(p), "bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in shards
    ]
    assert results["examples"]["count"] == 8  # two images, two boxes, two sentences each
    # The same command resumes; the same data with one file changed is another configuration.
    assert main(args) == 0
    changed = {**rows[1], "image": rows[1]["image"] // 2}  # same ids and sentences, other pixels
    write_refcocom_parquet(shards[1], [changed])
    assert main(args) == 2  # refused in one line, nothing run
    err = capsys.readouterr().err
    assert "different configuration (dataset.files: " in err and "examples" not in err.split("(")[1]


class CountingScenes(DataSource):
    """Generated scenes that note how many of their examples are alive whenever the next
    scene is read."""

    def __init__(self, scenes: int):
        super().__init__(SyntheticAdapter(), "synthetic", DataRequest(n=scenes), total_images=scenes)
        self.alive: weakref.WeakSet[Example] = weakref.WeakSet()
        self.seen: list[int] = []
        self.made = 0

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        for position in range(self.request.n or 0):
            self.seen.append(len(self.alive))
            group = scene_examples(generate_scene(position))
            self.alive.update(group)
            self.made += len(group)
            yield position, group


@pytest.mark.slow
def test_a_run_holds_one_image_group_at_a_time_not_the_data_set(tmp_path: Path) -> None:
    source = CountingScenes(12)
    total = sum(len(g) for g in source.groups())
    source.made, source.seen = 0, []
    rt = offline_runtime(None)
    try:
        result = anyio.run(
            lambda: run_examples(
                rt, source, tmp_path / "run", DataSpec("synthetic", n=12), RunOptions(bootstrap=0)
            )
        )
    finally:
        rt.close()
    assert result.summary.counts.examples == total > 150 and result.exit_code == 0
    assert source.made == 2 * total  # streamed twice (ids, then the run), never kept
    largest = max(len(scene_examples(generate_scene(p))) for p in range(12))
    # Alive while the next scene is read: the group being run and the last few in flight.
    assert max(source.seen) <= largest + RunOptions().concurrency
    assert max(source.seen) < total / 4


def test_streamed_and_loaded_examples_agree(tmp_path: Path) -> None:
    path = write_refcocom_parquet(tmp_path / "six.parquet", demo_rows(6))
    request = DataRequest(n=3, seed_subset=4)
    streamed = [ex.example_id for g in open_dataset(str(path), request).groups() for ex in g]
    loaded = [ex.example_id for ex in load_dataset_spec(str(path), 3, seed=4)]
    assert streamed == loaded and len({e.split(":")[0] for e in streamed}) == 3
    first = [
        ex.example_id for g in open_dataset(str(path), DataRequest(per_image="first")).groups() for ex in g
    ]
    assert len(first) == 6 and all(e.endswith(":0") for e in first)
