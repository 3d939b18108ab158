"""The bad-input corpus row: broken images, odd encodings, bad masks and expressions."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    img = PILImage.fromarray(arr) if mode is None else PILImage.fromarray(arr).convert(mode)
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _box_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[h // 4 : h // 4 + max(1, h // 2), w // 4 : w // 4 + max(1, w // 2)] = True
    return m


def _image_cases(img: np.ndarray) -> list[tuple[str, bytes | np.ndarray, tuple[int, int], str]]:
    """Broken or odd image files: (name, data, ground-truth size, expected outcome)."""
    h, w = img.shape[:2]
    jpeg = _png(img, fmt="JPEG", quality=90)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display: (h, w) becomes (w, h)
    rotated = _png(img, fmt="JPEG", exif=exif.tobytes())
    big = PILImage.new("RGB", (10_000, 10_000), (120, 130, 140))
    big.paste((200, 30, 30), (2500, 2500, 7500, 7500))
    buf = io.BytesIO()
    big.save(buf, format="PNG", compress_level=1)
    return [
        ("truncated JPEG", jpeg[: len(jpeg) // 2], (h, w), "failed"),
        ("zero-byte file", b"", (h, w), "failed"),
        ("not an image", b"<html><body>a web page, not a photo</body></html>", (h, w), "failed"),
        ("PNG named .jpg", _png(img), (h, w), "ok"),
        ("1x1 image", np.full((1, 1, 3), 200, np.uint8), (1, 1), "any"),
        ("10000x10000 image", buf.getvalue(), (10_000, 10_000), "ok"),
        ("grayscale", _png(img, "L"), (h, w), "ok"),
        ("RGBA", _png(img, "RGBA"), (h, w), "ok"),
        ("16-bit PNG", _png(img[..., 0].astype(np.uint16) * 257), (h, w), "ok"),
        ("CMYK JPEG", _png(img, "CMYK", fmt="JPEG"), (h, w), "ok"),
        ("EXIF-rotated photo", rotated, (w, h), "ok"),
    ]


TEXT_CASES = (
    ("empty expression", "", "failed"),
    ("whitespace expression", " \t\n ", "failed"),
    ("10,000-character expression", "the red circle " * 667, "failed"),
    ("control characters", "the\x00 red\x07 \x1b[31mcircle\u202e\r", "any"),
)


def _row(image_id: int, image: Any, sentence: str, mask: Any, **extra: Any) -> dict[str, Any]:
    return {
        "image": image,
        "image_id": image_id,
        **extra,
        "samples": [{"id": image_id, "sentences": [sentence], "mask": mask}],
    }


def bad_input_rows() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """RefCOCO-M rows of bad inputs, and what each image id must end as (``ok`` or ``failed``)."""
    from tools.offline.scenes import generate_scene

    scene = generate_scene(7)
    img = np.asarray(scene.image, dtype=np.uint8)
    h, w = img.shape[:2]
    obj = scene.objects[0]
    rows, expect = [], {}
    for i, (name, data, (mh, mw), outcome) in enumerate(_image_cases(img), start=1):
        mask = obj.mask if (mh, mw) == (h, w) else _box_mask(mh, mw)
        if name == "EXIF-rotated photo":
            mask = np.rot90(obj.mask, k=-1)
        sentence = obj.expressions[0] if (mh, mw) == (h, w) else "the object in the middle"
        file_name = f"{name.replace(' ', '_')}.jpg"
        rows.append(_row(i, data, sentence, np.ascontiguousarray(mask), file_name=file_name))
        expect[str(i)] = f"{name}|{outcome}"
    for name, text, outcome in TEXT_CASES:
        rows.append(_row(len(rows) + 1, img, text, obj.mask))
        expect[str(len(rows))] = f"{name}|{outcome}"
    rows.append(_row(len(rows) + 1, img, "x", _box_mask(50, 60)))
    expect[str(len(rows))] = "mask size != image size|failed"
    rows.append(_row(len(rows) + 1, img, "x", {"counts": "~~not an RLE!!", "size": [h, w]}))
    expect[str(len(rows))] = "RLE that does not decode|failed"
    return rows, expect


def bad_input_row(workdir: Path, seed: int = 0) -> RowResult:
    """One run over the bad-input corpus: each item ends recorded, failed ones with a reason."""
    from bench.data.fixtures import write_refcocom_parquet

    row = RowResult("bad-input corpus")
    t0 = time.perf_counter()
    rows, expect = bad_input_rows()
    path = write_refcocom_parquet(workdir / "bad-inputs.parquet", rows)
    run_dir = workdir / "bad-run"
    run = OfflineRun(
        run_dir, workdir / "bad-cache", n=None, dataset=str(path), episode={"controller": "loop"}
    )
    outcome = run_offline(run)
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    row.injected = len(expect)
    outcomes = {}
    for rec in recs:
        name, want = expect[rec["image_id"]].split("|")
        got = "failed" if rec["failed"] else "ok"
        outcomes[name] = f"{got}: {rec['error']}" if rec["failed"] else f"ok (iou {rec['iou']:.2f})"
        row.check(want in ("any", got), f"{name}: expected {want}, got {got} ({rec.get('error')})")
    reprs = [name for name, said in outcomes.items() if "BytesIO" in said or " at 0x" in said]
    row.check(not reprs, f"errors that show a stream's repr instead of naming the input: {reprs}")
    row.detected = row.failed
    row.details["outcomes"] = outcomes
    row.seconds = time.perf_counter() - t0
    return row


def _dataset_with_paths(workdir: Path) -> tuple[Path, Path]:
    """A parquet data set (in its own folder) with a row without samples, a sample without
    sentences, and image paths inside it, relative outside it and absolute outside it.
    Returns the parquet file and the planted outside image."""
    from bench.data.fixtures import write_refcocom_parquet
    from tools.offline.scenes import generate_scene

    scene = generate_scene(11)
    img = np.asarray(scene.image, dtype=np.uint8)
    obj = scene.objects[0]
    folder, outside = workdir / "dataset", workdir / "outside"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    PILImage.fromarray(img).save(folder / "images" / "inside.png")
    planted = outside / "planted.png"
    PILImage.fromarray(img).save(planted)
    sample = {"id": 1, "sentences": [obj.expressions[0]], "mask": obj.mask}
    rows = [
        _row(1, img, obj.expressions[0], obj.mask),
        {"image": img, "image_id": 2, "samples": []},
        {
            "image": img,
            "image_id": 3,
            "samples": [{**sample, "id": 30, "sentences": []}, {**sample, "id": 31}],
        },
        {"image": {"path": "images/inside.png"}, "image_id": 4, "samples": [{**sample, "id": 4}]},
        {"image": {"path": "../outside/planted.png"}, "image_id": 5, "samples": [{**sample, "id": 5}]},
        {"image": {"path": str(planted)}, "image_id": 6, "samples": [{**sample, "id": 6}]},
    ]
    return write_refcocom_parquet(folder / "data.parquet", rows), planted


def dataset_rows_row(workdir: Path, seed: int = 0) -> RowResult:
    """Rows without samples and samples without sentences are counted and reported; image
    paths out of the data set's folder fail their example unless explicitly allowed."""
    row = RowResult("dataset rows and paths")
    t0 = time.perf_counter()
    path, planted = _dataset_with_paths(workdir)
    run_dir = workdir / "paths-run"
    run = OfflineRun(run_dir, None, n=None, dataset=str(path), episode={"controller": "oneshot"})
    outcome = run_offline(run)
    recs = account(row, run_dir, outcome.example_ids, outcome.exit_code)
    dropped = outcome.summary.get("dropped", {})
    outside = [r for r in recs if r["failed"] and "outside the data set folder" in (r["error"] or "")]
    row.injected = 4  # a row without samples, a sample without sentences, two paths outside
    row.detected = sum(dropped.values()) + len(outside)
    row.check(dropped == {"rows_without_samples": 1, "samples_without_sentences": 1}, f"dropped: {dropped}")
    row.check(any("rows without samples" in n for n in outcome.notes), f"not reported: {outcome.notes}")
    row.check({r["image_id"] for r in outside} == {"5", "6"}, "a path outside the folder was read")
    row.check(all(not r["failed"] for r in recs if r["image_id"] == "4"), "a path inside the folder failed")
    allowed = OfflineRun(workdir / "paths-allowed", None, n=None, dataset=str(path),
                         episode={"controller": "oneshot"}, data={"allow_outside_paths": True})  # fmt: skip
    opened = run_offline(allowed)
    row.check(opened.exit_code == 0, f"with the flag, {opened.summary['counts']['failed']} example(s) failed")
    row.details.update(dropped=dropped, planted=str(planted))
    row.seconds = time.perf_counter() - t0
    return row
