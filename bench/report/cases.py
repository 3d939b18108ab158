"""``refseg bench cases RUN_A RUN_B``: where B beats A, where it loses, where nothing changed.

Examples are paired by ``example_id``. Every pair falls in one category: ``improved`` (IoU
gain of B over A above ``tolerance``), ``degraded`` (loss above ``tolerance``) or ``unchanged``; the
totals count them all. The galleries show the ``k`` largest gains, the ``k`` largest losses
and ``k`` unchanged pairs spread over the IoU range: one PNG per category (rows: image,
ground truth, prediction A, prediction B, with the sentence, both IoUs and each run's query
history); the images are reloaded through the data set spec stored in the runs'
``config.json``. The suite writes them for one-shot against its best loop run.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.examples import Example
from bench.perturb import perturb_image
from bench.records import SampleRecord
from bench.report.paired import DEFAULT_TOLERANCE, change_of
from bench.rle import decode_rle
from bench.run_folder import recorded_data
from bench.samples import CONFIG, read_config, read_samples
from tools.errors import InputError
from tools.render import overlay

CATEGORIES = ("improved", "degraded", "unchanged")


def pick_cases(
    a: dict[str, SampleRecord],
    b: dict[str, SampleRecord],
    k: int = 6,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, list[dict[str, Any]]]:
    """Pairs by category: ``{"improved": [{"example_id", "iou_a", "iou_b", "diff"}, ...], ...}``."""
    if k < 1:
        raise InputError("--k must be >= 1")
    common = sorted(set(a) & set(b), key=lambda e: (b[e].index, e))
    pairs: list[dict[str, Any]] = [
        {"example_id": e, "iou_a": a[e].iou, "iou_b": b[e].iou, "diff": b[e].iou - a[e].iou} for e in common
    ]
    by_change: dict[str, list[dict[str, Any]]] = {"improved": [], "degraded": [], "unchanged": []}
    for p in pairs:
        by_change[change_of(p["diff"], tolerance)].append(p)
    improved = sorted(by_change["improved"], key=lambda p: -p["diff"])[:k]
    degraded = sorted(by_change["degraded"], key=lambda p: p["diff"])[:k]
    same = sorted(by_change["unchanged"], key=lambda p: p["iou_a"])
    if len(same) > k:  # spread over the IoU range, not just the k worst
        same = [same[int(i)] for i in np.linspace(0, len(same) - 1, k).round().astype(int)]
    return {"improved": improved, "degraded": degraded, "unchanged": same}


def case_totals(
    a: dict[str, SampleRecord], b: dict[str, SampleRecord], tolerance: float = DEFAULT_TOLERANCE
) -> dict[str, int]:
    """How many paired examples fall in each category (all of them, not only those shown)."""
    changes = [change_of(b[e].iou - a[e].iou, tolerance) for e in set(a) & set(b)]
    return {
        **{kind: changes.count(kind) for kind in ("improved", "degraded", "unchanged")},
        "paired": len(changes),
    }


def totals_line(totals: dict[str, int], shown: dict[str, list[Any]], tolerance: float) -> str:
    """``improved 197 (6 shown), degraded 5 (5 shown), unchanged 490 (6 shown) of 692 ...``."""
    parts = [f"{c} {totals[c]} ({len(shown[c])} shown)" for c in CATEGORIES]
    return (
        ", ".join(parts) + f" of {totals['paired']} paired expressions (|dIoU| <= {tolerance:g} is unchanged)"
    )


def _examples_of(run_dir: Path, wanted: set[str]) -> tuple[dict[str, Example], str]:
    """The examples ``wanted`` of the data set a run recorded (streamed: only those are
    kept), and the run's perturbation."""
    spec = recorded_data(read_config(run_dir))
    if spec is None:
        raise InputError(f"{run_dir}: not a run folder (no {CONFIG} with its data set)")
    found = {ex.example_id: ex for group in spec.open().groups() for ex in group if ex.example_id in wanted}
    return found, spec.perturb


def _mask(rec: SampleRecord, size: tuple[int, int]) -> np.ndarray:
    return decode_rle(rec.mask.model_dump()) if rec.mask is not None else np.zeros(size, dtype=bool)


def _panel(name: str, iou: float, queries: list[str]) -> str:
    """A prediction's title: run, IoU and its query history (rewrites after the first)."""
    history = " -> ".join(queries[1:])
    wrapped = "\n".join(textwrap.wrap(f"queries: {history}", 46)[:3]) if history else "no rewrite"
    return f"{name}: IoU {iou:.3f}\n{wrapped}"


TITLE_IN = 0.45  # inches above the first row for the gallery's title
CAPTIONS_IN = 0.75  # ... and for the first row's captions (up to 4 lines of 8 pt) below it


def gallery_figure(rows: list[dict[str, Any]], names: tuple[str, str], title: str) -> Any:
    """The gallery as a matplotlib ``Figure``: a row per case with image, ground truth,
    prediction A and prediction B; the title sits above the first row's captions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = 3.4 * max(1, len(rows)) + TITLE_IN
    fig = Figure(figsize=(12, height), dpi=72)
    FigureCanvasAgg(fig)
    fig.suptitle(title, y=1 - 0.08 / height, va="top")
    for i, row in enumerate(rows):
        panels = [
            (row["pixels"], "\n".join(textwrap.wrap(f'"{row["sentence"]}"', 40))),
            (np.asarray(overlay(row["pixels"], row["gt"])), "ground truth"),
            (
                np.asarray(overlay(row["pixels"], row["mask_a"])),
                _panel(names[0], row["iou_a"], row["queries_a"]),
            ),
            (
                np.asarray(overlay(row["pixels"], row["mask_b"])),
                _panel(names[1], row["iou_b"], row["queries_b"]),
            ),
        ]
        for j, (img, label) in enumerate(panels):
            ax = fig.add_subplot(max(1, len(rows)), 4, 4 * i + j + 1)
            ax.imshow(img)
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    # Fixed margins: tight_layout over dozens of axes costs seconds and gains nothing here.
    top = 1 - (TITLE_IN + CAPTIONS_IN) / height
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.05, hspace=0.45)
    return fig


def render_gallery(rows: list[dict[str, Any]], path: Path, names: tuple[str, str], title: str) -> Path:
    """One PNG of :func:`gallery_figure`."""
    fig = gallery_figure(rows, names, title)
    fig.savefig(path, pil_kwargs={"compress_level": 1})  # big photos: fast zlib, slightly larger file
    return path


def write_cases(
    run_a: str | Path,
    run_b: str | Path,
    out_dir: str | Path,
    *,
    k: int = 6,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Pick cases, render ``out_dir/{improved,degraded,unchanged}.png`` and ``cases.json``.

    Returns:
        The cases shown, by category, plus ``totals`` (:func:`case_totals`).
    """
    dir_a, dir_b, out = Path(run_a), Path(run_b), Path(out_dir)
    recs_a, _ = read_samples(dir_a)
    recs_b, _ = read_samples(dir_b)
    if not recs_a or not recs_b:
        raise InputError(f"no finished examples in {dir_a if not recs_a else dir_b}; run it first")
    picked = pick_cases(recs_a, recs_b, k, tolerance)
    if not any(picked.values()):
        raise InputError(f"{dir_a} and {dir_b} share no example ids; compare runs over the same data")
    wanted = {p["example_id"] for rows in picked.values() for p in rows}
    examples, perturb_a = _examples_of(dir_a, wanted)
    if wanted - set(examples):
        more, _ = _examples_of(dir_b, wanted - set(examples))
        examples = {**more, **examples}
    out.mkdir(parents=True, exist_ok=True)
    names = (dir_a.name or "A", dir_b.name or "B")
    for category in CATEGORIES:
        rows = []
        for p in picked[category]:
            ex = examples.get(p["example_id"])
            if ex is None or ex.error is not None:
                continue
            try:
                image = perturb_image(ex.load_image(), perturb_a)
            except InputError:
                continue  # an unreadable image cannot be shown
            size = image.size
            rows.append(
                {
                    **p,
                    "sentence": ex.sentence,
                    "pixels": image.pixels,
                    "gt": ex.gt_mask((image.height, image.width)),
                    "mask_a": _mask(recs_a[p["example_id"]], size),
                    "mask_b": _mask(recs_b[p["example_id"]], size),
                    "queries_a": list(recs_a[p["example_id"]].queries),
                    "queries_b": list(recs_b[p["example_id"]].queries),
                }
            )
        if rows:
            render_gallery(
                rows,
                out / f"{category}.png",
                names,
                f"{category}: {names[1]} vs {names[0]} (image as {names[0]} saw it: {perturb_a})",
            )
    totals = case_totals(recs_a, recs_b, tolerance)
    (out / "cases.json").write_text(json.dumps({**picked, "totals": totals}, indent=2), encoding="utf-8")
    return {**picked, "totals": totals}
