"""Data loading: RefCOCO-M parquet in the hub's schema (file, shards), options, errors, scenes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from bench.data import Example, group_by_image, load_dataset_spec
from bench.data.fixtures import demo_rows, write_refcocom_parquet
from bench.data.refcocom import load_refcocom
from bench.data.synthetic import load_synthetic
from bench.data_errors import DatasetError
from bench.rle import encode_rle
from tools.errors import ConfigError, InputError

SIZES = [(20, 30), (24, 16), (18, 18), (10, 40), (32, 12), (16, 16)]


def _rows(n: int = 3) -> list[dict]:
    """Image i has size SIZES[i]; image 1 has two samples (2 + 1 sentences), others one."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        h, w = SIZES[i]
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        m1 = np.zeros((h, w), bool)
        m1[1:5, 2:9] = True  # 4 x 7 = 28 pixels
        samples = [{"id": 10 * i + 1, "category": "cat", "sentences": ["a cat", "cat left"], "mask": m1}]
        if i == 0:
            m2 = np.zeros((h, w), bool)
            m2[h - 1, w - 1] = True
            samples.append({"id": 2, "category": "dog", "sentences": ["the dog"], "mask": m2})
        rows.append({"image": image, "image_id": 1000 + i, "samples": samples})
    return rows


@pytest.fixture
def cache(tmp_path: Path) -> str:
    return str(tmp_path / "hf-cache")


@pytest.mark.slow
def test_one_example_per_sentence_with_decoded_masks_and_images(tmp_path: Path, cache: str) -> None:
    rows = _rows(3)
    path = write_refcocom_parquet(tmp_path / "refcocom.parquet", rows)
    examples = load_refcocom(str(path), cache_dir=cache)
    assert [e.example_id for e in examples] == [
        "1000:1:0",
        "1000:1:1",
        "1000:2:0",
        "1001:11:0",
        "1001:11:1",
        "1002:21:0",
        "1002:21:1",
    ]
    assert all(e.ok for e in examples)
    first, dog = examples[0], examples[2]
    assert (first.sentence, first.category, first.sentence_index) == ("a cat", "cat", 0)
    assert first.bbox_xywh == (2.0, 1.0, 7.0, 4.0)
    assert first.file_name.endswith("000000001000.jpg")
    for e in examples:
        h, w = SIZES[int(e.image_id) - 1000]
        mask = e.gt_mask()
        assert mask.shape == (h, w) and mask.dtype == bool
    np.testing.assert_array_equal(first.gt_mask(), rows[0]["samples"][0]["mask"])
    assert first.gt_area() == 28
    assert dog.gt_mask()[19, 29] and dog.gt_area() == 1
    np.testing.assert_array_equal(examples[3].load_image().pixels, rows[1]["image"])  # PNG: exact
    assert [g for g, _ in group_by_image(examples)] == ["1000", "1001", "1002"]


def test_n_per_image_and_seed(tmp_path: Path, cache: str) -> None:
    path = write_refcocom_parquet(tmp_path / "six.parquet", _rows(6))
    two = load_refcocom(str(path), n=2, cache_dir=cache)
    assert {e.image_id for e in two} == {"1000", "1001"} and len(two) == 5
    firsts = load_refcocom(str(path), per_image="first", cache_dir=cache)
    assert [e.example_id for e in firsts] == [f"{1000 + i}:{10 * i + 1}:0" for i in range(6)]
    picks = {
        s: sorted({e.image_id for e in load_refcocom(str(path), n=3, seed=s, cache_dir=cache)})
        for s in range(6)
    }
    assert all(len(v) == 3 for v in picks.values())
    assert picks[0] == sorted({e.image_id for e in load_refcocom(str(path), n=3, seed=0, cache_dir=cache)})
    assert len({tuple(v) for v in picks.values()}) > 1  # seeds pick different subsets
    assert len(load_refcocom(str(path), n=100, cache_dir=cache)) == 13  # more than there is: all
    with pytest.raises(ConfigError):
        load_refcocom(str(path), n=0, cache_dir=cache)
    with pytest.raises(ConfigError, match="per_image"):
        load_refcocom(str(path), per_image="some", cache_dir=cache)


def test_folder_of_shards(tmp_path: Path, cache: str) -> None:
    rows = _rows(5)
    folder = tmp_path / "data"
    write_refcocom_parquet(folder / "validation-00000-of-00002.parquet", rows[:2])
    write_refcocom_parquet(folder / "validation-00001-of-00002.parquet", rows[2:4])
    write_refcocom_parquet(folder / "train-00000-of-00001.parquet", rows[4:])  # other split: ignored
    examples = load_refcocom(str(tmp_path), cache_dir=cache)
    assert [g for g, _ in group_by_image(examples)] == ["1000", "1001", "1002", "1003"]
    other = load_refcocom(str(tmp_path), split="train", cache_dir=cache)
    assert {e.image_id for e in other} == {"1004"}
    plain = tmp_path / "plain"
    write_refcocom_parquet(plain / "a.parquet", rows[:1])
    write_refcocom_parquet(plain / "b.parquet", rows[1:2])
    assert len(load_refcocom(str(plain), cache_dir=cache)) == 5  # no split names: every shard


def test_missing_sources_are_dataset_errors(tmp_path: Path, cache: str) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_refcocom(str(tmp_path / "nope.parquet"), cache_dir=cache)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset_spec("./missing/folder", cache_dir=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no \.parquet files"):
        load_refcocom(str(tmp_path / "empty"), cache_dir=cache)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DatasetError, match="parquet"):
        load_refcocom(str(junk), cache_dir=cache)


def test_wrong_schema_names_what_is_missing(tmp_path: Path, cache: str) -> None:
    no_samples = tmp_path / "a.parquet"
    pq.write_table(pa.table({"image_id": [1], "image": [{"bytes": b"x", "path": None}]}), no_samples)
    with pytest.raises(DatasetError, match="samples"):
        load_refcocom(str(no_samples), cache_dir=cache)
    no_size = tmp_path / "b.parquet"
    sample = {"id": 1, "category": "c", "sentences": ["x"], "bbox": [0.0, 0, 1, 1], "mask": {"counts": "1"}}
    table = pa.table({"image": [{"bytes": b"x", "path": None}], "image_id": [1], "samples": [[sample]]})
    pq.write_table(table, no_size)
    with pytest.raises(DatasetError, match=r"samples\.mask\.size"):
        load_refcocom(str(no_size), cache_dir=cache)


def test_row_problems_are_flagged_not_dropped(tmp_path: Path, cache: str) -> None:
    import anyio

    from bench.evaluate import evaluate_example, load_example_image

    rows = _rows(2)
    rows[0]["samples"][0]["mask"] = encode_rle(np.ones((5, 5), bool))  # image is 20x30
    rows[1]["samples"][0]["sentences"] = ["  ", "fine"]
    rows[1]["image"] = b"\x89PNG broken"
    examples = load_refcocom(str(write_refcocom_parquet(tmp_path / "p.parquet", rows)), cache_dir=cache)
    assert len(examples) == 5
    by_id = {e.example_id: e for e in examples}

    def recorded(ex: Example) -> str:  # the error its samples.jsonl line would carry (no episode runs)
        image = load_example_image(ex, "clean")
        rec = anyio.run(evaluate_example, None, 0, ex, image)  # type: ignore[arg-type]
        assert rec.failed and rec.gt_area == 25 == rec.union  # the miss still counts in cIoU
        return rec.error or ""

    # The mask's size is checked against the decoded image (loading decodes nothing).
    # Sizes read W x H: the image is 30 wide, 20 high.
    assert "ground-truth mask size 5x5 does not match the image size 30x20" in recorded(by_id["1000:1:0"])
    assert "5x5" in recorded(by_id["1000:1:1"])
    assert by_id["1000:2:0"].ok  # the other sample of the same image is fine
    assert "empty" in (by_id["1001:11:0"].error or "")
    broken = by_id["1001:11:1"]
    assert broken.ok  # the broken image is found when it is loaded, for this image only
    with pytest.raises(InputError, match="image 1001"):
        broken.load_image()
    assert by_id["1000:2:0"].load_image().size == (20, 30)


def test_demo_rows_roundtrip(tmp_path: Path, cache: str) -> None:
    rows = demo_rows(n_images=2, seed=3)
    path = write_refcocom_parquet(tmp_path / "demo.parquet", rows, image_format="JPEG")
    examples = load_dataset_spec(str(path), cache_dir=cache)
    assert len(examples) == 8 and all(e.ok for e in examples)
    assert examples[0].sentence.startswith("the ") and examples[0].load_image().size == (48, 64)
    np.testing.assert_array_equal(examples[0].gt_mask(), rows[0]["samples"][0]["mask"])


def test_synthetic_examples() -> None:
    from tools.offline.scenes import generate_scenes

    scenes = generate_scenes(2, seed=5)
    examples = load_synthetic(2, seed=5)
    assert len(examples) == sum(len(o.expressions) for s in scenes for o in s.objects)
    assert len({e.example_id for e in examples}) == len(examples)
    e = examples[0]
    obj = scenes[0].objects[0]
    assert e.image_id == scenes[0].scene_id and e.sample_id == str(obj.object_id)
    assert e.sentence == obj.expressions[0] and e.category == obj.shape and e.source == "synthetic"
    np.testing.assert_array_equal(e.gt_mask(), obj.mask)
    np.testing.assert_array_equal(e.load_image().pixels, scenes[0].image)
    assert e.gt_area() == int(obj.mask.sum())
    first = load_dataset_spec("synthetic", n=2, per_image="first", seed=5)
    assert [x.example_id for x in first] == [f"{s.scene_id}:1:0" for s in scenes]


def test_example_is_frozen() -> None:
    ex = load_synthetic(1, seed=0)[0]
    assert isinstance(ex, Example)
    with pytest.raises(AttributeError):
        ex.sentence = "other"  # type: ignore[misc]


def test_unreachable_hub_name_is_a_dataset_error(monkeypatch: pytest.MonkeyPatch, cache: str) -> None:
    import datasets
    import huggingface_hub.constants

    # The env vars conftest sets are read at import; datasets may be imported already.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match=r"moondream/refcoco-m.*local parquet"):
        load_dataset_spec("moondream/refcoco-m", cache_dir=cache)


def test_self_contained_examples_carry_bytes_or_the_readers_error(tmp_path: Path) -> None:
    from dataclasses import replace

    from bench.data.examples import EncodedImage, self_contained
    from bench.evaluate import load_example_image

    class Row:  # a data set row reference, as bench.data.parquet.ArrowImage
        name = "row 7"

        def __init__(self, data: bytes | Exception):
            self.data = data

        def raw(self) -> bytes:
            if isinstance(self.data, Exception):
                raise self.data
            return self.data

        def load(self) -> Any:
            from tools.images import decode_image

            return decode_image(self.raw(), name=self.name)

    ex = load_dataset_spec("synthetic", 1)[0]
    buf = io.BytesIO()
    PILImage.fromarray(ex.load_image().pixels).save(buf, format="PNG")
    for source in (Row(buf.getvalue()), Row(InputError("row 7: the row has no image")), Row(OSError("gone"))):
        original = replace(ex, image_ref=source)
        portable = self_contained(original)
        assert not isinstance(portable.image_ref, Row)
        a, b = load_example_image(original, "clean"), load_example_image(portable, "clean")
        if isinstance(a, str):
            assert a == b  # the same error text, e.g. "OSError: gone"
        else:
            assert isinstance(portable.image_ref, EncodedImage) and (a.pixels == b.pixels).all()
    assert self_contained(ex) is ex  # pixels in memory travel as they are
