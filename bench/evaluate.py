"""One example to one ``samples.jsonl`` record (:class:`bench.records.SampleRecord`): decode,
run the episode, score the mask with the data set's protocol."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.rank_steps import RankedCandidate, RankStep
from agent.session import Session
from bench.data.examples import Example
from bench.data.protocol import EvalProtocol, GroundTruth, score_masks
from bench.data.protocols import MASK_IOU
from bench.metrics import size_bucket
from bench.perturb import perturb_image
from bench.records import (
    RLE,
    SAMPLES_SCHEMA_VERSION,
    RankStepRecord,
    SampleRecord,
    SpendRecord,
    ToolCostRecord,
)
from bench.rle import encode_rle
from cache.lru import LRU
from tools.errors import RefsegError
from tools.images import size_text
from tools.types import Image

# RLEs of ranking candidates by (candidate key, size): the examples of one image rank the
# same proposals, so most candidates were encoded for an earlier example.
_RLE_MEMO: LRU[tuple[tuple[str, int], tuple[int, int]], dict[str, Any]] = LRU(4096)


def candidate_rle(c: RankedCandidate) -> dict[str, Any]:
    """``encode_rle(c.mask)``, kept by the candidate's key (see :class:`RankedCandidate`)."""
    if c.key is None:
        return encode_rle(c.mask)
    memo_key = (c.key, (int(c.mask.shape[0]), int(c.mask.shape[1])))
    rle = _RLE_MEMO.get(memo_key)
    if rle is None:
        rle = encode_rle(c.mask)
        _RLE_MEMO.put(memo_key, rle)
    return {"size": list(rle["size"]), "counts": rle["counts"]}  # a record's own copy


def rank_steps_json(
    steps: list[RankStep], score: Callable[[np.ndarray], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The ``rank_steps`` field of a record (``samples.jsonl``, ``result.json``): each ranking's
    step, query, conf and gap (exact: what the guard compared), what the episode had spent
    asking for help up to it, and its top candidates (index, probability, origin, mask as COCO
    RLE at the original image's size, and with ``score`` their score against the ground truth).
    A mask several steps share is encoded and scored once."""
    encoded: dict[int, dict[str, Any]] = {}  # by id() of the shared mask array (alive here)
    scored: dict[int, dict[str, Any]] = {}

    def candidate(c: RankedCandidate) -> dict[str, Any]:
        key = id(c.mask)
        if key not in encoded:
            encoded[key] = candidate_rle(c)
            scored[key] = score(c.mask) if score is not None else {}
        return {"index": c.index, "prob": c.prob, "origin": c.origin, "mask": encoded[key], **scored[key]}

    return [
        {
            "step": s.step,
            "query": s.query,
            "conf": s.conf,
            "gap": s.gap,
            "spent": s.spend.as_dict(),
            **({"proposal_set": s.proposal_set} if s.proposal_set else {}),
            "candidates": [candidate(c) for c in s.candidates],
        }
        for s in steps
    ]


def candidate_scorer(protocol: EvalProtocol, truth: GroundTruth) -> Callable[[np.ndarray], dict[str, Any]]:
    """Scores a ranking candidate's mask as the protocol scores a prediction (the fields of
    :class:`bench.records.RankedCandidateRecord`); a mask it cannot score gets none."""

    def score(mask: np.ndarray) -> dict[str, Any]:
        try:
            s = protocol.score(mask, truth)
        except ValueError:
            return {}
        out: dict[str, Any] = {"iou": s.iou, "inter": s.inter, "union": s.union, "pred_area": s.pred_area}
        if s.extra:
            out["scores"] = dict(s.extra)
        return out

    return score


def load_example_image(ex: Example, perturbation: str) -> Image | str:
    """The (perturbed) image, or the error text that fails all its examples."""
    try:
        image = ex.load_image()
        return perturb_image(image, perturbation)
    except RefsegError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on one odd file must not end the run
        return f"{type(exc).__name__}: {exc}"


def failed_record(index: int, ex: Example, error: str | None = None) -> SampleRecord:
    """A failed record of ``ex`` saying why (``error``), with the ground truth's area filled in
    when it can be read (a miss still counts the ground truth in cIoU); evaluation fills in
    what it learns."""
    rec = SampleRecord(
        schema_version=SAMPLES_SCHEMA_VERSION,
        index=index,
        example_id=ex.example_id,
        image_id=ex.image_id,
        sentence=ex.sentence,
        category=ex.category,
        tags=dict(ex.tags),
        error=error,
    )
    try:  # the area from the RLE runs
        rec.gt_area = rec.union = ex.gt_area()
        rec.bucket = size_bucket(rec.gt_area)
    except Exception:  # a corrupt mask: evaluating the example records why
        pass
    return rec


def _checked(ex: Example, image: Image | str) -> tuple[Image, GroundTruth]:
    """The image and its ground truth, or raise: a broken example (mask, image, sentence)."""
    if ex.error is not None:
        raise RefsegError(ex.error)
    if isinstance(image, str):
        raise RefsegError(image)
    truth = ex.ground_truth((image.height, image.width))
    for what, mask in (("ground-truth mask", truth.mask), ("ignore region", truth.ignore)):
        if mask is not None and mask.shape != image.size:
            size = size_text(image.height, image.width)
            raise RefsegError(f"{what} size {size_text(*mask.shape)} does not match the image size {size}")
    return image, truth


async def evaluate_example(
    session: Session, index: int, ex: Example, image: Image | str, protocol: EvalProtocol = MASK_IOU
) -> SampleRecord:
    """Run one example and score its mask with ``protocol``; per-example problems become a
    failed record, run-level ones raise."""
    start = time.perf_counter()
    rec = failed_record(index, ex)
    try:
        checked, truth = _checked(ex, image)
    except Exception as exc:  # broken example: record, go on
        rec.error = str(exc) if isinstance(exc, RefsegError) else f"{type(exc).__name__}: {exc}"
        rec.seconds = round(time.perf_counter() - start, 4)
        return rec
    # A miss counts the target's pixels outside the ignore region (drawn masks: known only now).
    rec.gt_area = rec.union = score_masks(np.zeros_like(truth.mask, dtype=bool), truth).gt_area
    rec.bucket = size_bucket(rec.gt_area)
    result = await session.run(checked, ex.sentence, ex.example_id)  # run-level errors propagate
    rec.error = result.error
    rec.iterations = result.iterations
    rec.stop_reason = str(result.stop_reason)
    rec.queries = result.queries
    rec.conf = round(result.conf, 6)
    rec.gap = round(result.gap, 6)
    rec.chosen = result.chosen
    rec.n_proposals = result.n_proposals
    rec.costs = {k: ToolCostRecord.model_validate(v) for k, v in result.costs.as_dict().items()}
    rec.needed_vlm = result.needed_vlm
    rec.fallback_reason = result.fallback_reason
    rec.fallback_kind = result.fallback_kind
    steps = rank_steps_json(result.rank_steps, candidate_scorer(protocol, truth))
    rec.rank_steps = [RankStepRecord.model_validate(s) for s in steps]
    rec.spent = SpendRecord.model_validate(result.spend.as_dict())
    # A fallback (e.g. the VLM failed mid-episode) still answers; only no answer is a failure.
    if result.mask is not None and (result.ok or result.stop_reason == "fallback"):
        try:
            score = protocol.score(result.mask, truth)
        except ValueError as exc:
            rec.error = str(exc)
        else:
            rec.failed = False
            rec.inter, rec.union, rec.iou = score.inter, score.union, score.iou
            rec.gt_area, rec.pred_area = score.gt_area, score.pred_area
            rec.scores = dict(score.extra)
            rec.mask = RLE.model_validate(encode_rle(result.mask))
    elif rec.error is None:
        rec.error = "the episode chose no mask"
    rec.seconds = round(time.perf_counter() - start, 4)
    return rec
