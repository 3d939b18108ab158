"""One example to one ``samples.jsonl`` record: decode, run the episode, score the mask."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.rank_steps import RankStep
from agent.session import Session
from bench.data import Example
from bench.metrics import intersection_union, size_bucket
from bench.perturb import perturb_image
from bench.rle import encode_rle
from tools.errors import RefsegError
from tools.types import Image


def rank_steps_json(steps: list[RankStep]) -> list[dict[str, Any]]:
    """The ``rank_steps`` field of a record (``samples.jsonl``, ``result.json``): each ranking's
    step, query and top candidates (index, probability, origin, mask as COCO RLE at the
    original image's size). A mask several steps share is encoded once."""
    encoded: dict[int, dict[str, Any]] = {}  # by id() of the shared mask array (alive here)

    def rle(mask: np.ndarray) -> dict[str, Any]:
        if id(mask) not in encoded:
            encoded[id(mask)] = encode_rle(mask)
        return encoded[id(mask)]

    return [
        {
            "step": s.step,
            "query": s.query,
            "candidates": [
                {"index": c.index, "prob": c.prob, "origin": c.origin, "mask": rle(c.mask)}
                for c in s.candidates
            ],
        }
        for s in steps
    ]


def load_example_image(ex: Example, perturbation: str) -> Image | str:
    """The (perturbed) image, or the error text that fails all its examples."""
    try:
        image = ex.load_image()
        return perturb_image(image, perturbation)
    except RefsegError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        return f"{type(exc).__name__}: {exc}"


def base_record(index: int, ex: Example) -> dict[str, Any]:
    """A failed record with every field; evaluation fills in what it learns."""
    return {
        "index": index,
        "example_id": ex.example_id,
        "image_id": ex.image_id,
        "sentence": ex.sentence,
        "category": ex.category,
        "failed": True,
        "error": None,
        "iou": 0.0,
        "inter": 0,
        "union": 0,
        "gt_area": 0,
        "bucket": None,
        "mask": None,
        "iterations": 0,
        "stop_reason": "error",
        "queries": [],
        "conf": 0.0,
        "gap": 0.0,
        "chosen": -1,
        "n_proposals": 0,
        "costs": {},
        "seconds": 0.0,
        "needed_vlm": False,
        "fallback_reason": None,
        "fallback_kind": None,
        "rank_steps": [],
    }


def failed_record(index: int, ex: Example, error: str | None = None) -> dict[str, Any]:
    """:func:`base_record` with the ground truth's area filled in when it can be read (a miss
    still counts the ground truth in cIoU), and ``error``."""
    rec = base_record(index, ex)
    try:  # the area from the RLE runs
        rec["gt_area"] = rec["union"] = ex.gt_area()
        rec["bucket"] = size_bucket(rec["gt_area"])
    except Exception:  # a corrupt mask: evaluating the example records why
        pass
    rec["error"] = error
    return rec


def _checked(ex: Example, image: Image | str) -> tuple[Image, np.ndarray]:
    """The image and its ground-truth mask, or raise: a broken example (mask, image, sentence)."""
    if ex.error is not None:
        raise RefsegError(ex.error)
    if isinstance(image, str):
        raise RefsegError(image)
    gt = ex.gt_mask()
    if gt.shape != image.size:
        raise RefsegError(
            f"ground-truth mask {gt.shape[0]}x{gt.shape[1]} does not match the "
            f"image {image.height}x{image.width}"
        )
    return image, gt


async def evaluate_example(session: Session, index: int, ex: Example, image: Image | str) -> dict[str, Any]:
    """Run one example; per-example problems become a failed record, run-level ones raise."""
    start = time.perf_counter()
    rec = failed_record(index, ex)
    try:
        checked, gt = _checked(ex, image)
    except Exception as exc:  # broken example: record, go on
        rec["error"] = str(exc) if isinstance(exc, RefsegError) else f"{type(exc).__name__}: {exc}"
        rec["seconds"] = round(time.perf_counter() - start, 4)
        return rec
    result = await session.run(checked, ex.sentence, ex.example_id)  # run-level errors propagate
    rec.update(
        error=result.error,
        iterations=result.iterations,
        stop_reason=str(result.stop_reason),
        queries=result.queries,
        conf=round(result.conf, 6),
        gap=round(result.gap, 6),
        chosen=result.chosen,
        n_proposals=result.n_proposals,
        costs=result.costs.as_dict(),
        needed_vlm=result.needed_vlm,
        fallback_reason=result.fallback_reason,
        fallback_kind=result.fallback_kind,
        rank_steps=rank_steps_json(result.rank_steps),
    )
    # A fallback (e.g. the VLM failed mid-episode) still answers; only no answer is a failure.
    if result.mask is not None and (result.ok or result.stop_reason == "fallback"):
        try:
            inter, union = intersection_union(result.mask, gt)
            rec.update(
                failed=False,
                inter=inter,
                union=union,
                iou=1.0 if union == 0 else inter / union,
                mask=encode_rle(result.mask),
            )
        except ValueError as exc:
            rec["error"] = str(exc)
    elif rec["error"] is None:
        rec["error"] = "the episode chose no mask"
    rec["seconds"] = round(time.perf_counter() - start, 4)
    return rec
