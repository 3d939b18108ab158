"""``clip_rank`` against the compute floor of ranking, and against a per-candidate loop.

The floor for N candidates, written plainly: the N visual prompts made at the model's
input size (:func:`tools.visual_prompts.prompt_batch`, the same crops and preprocessing
``clip_rank`` uses), one batched image forward, one text forward, one matrix product.
``clip_rank`` must give the very same scores and stay within 1.2x of its time.

The candidates' digest (which ``clip_rank`` keys its in-memory cache on) is computed before
timing: in a run the tool-call cache key needs it anyway, before any ranker is called.

The per-candidate loop is what simple research scripts do: render each prompt at the
photo's resolution, run open_clip's own preprocessing (resize, centre crop, normalise) on
it, and encode it alone. Its scores differ slightly (other resizing), its time a lot.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from bench.benchmarks.speed.machine import timed
from bench.benchmarks.speed.setup import Models
from tools.accel import autocast
from tools.clip_declaration import ClipRankParams
from tools.clip_loading import ClipBundle
from tools.clip_rank import ClipRank, apply_template
from tools.types import Image, Proposals
from tools.visual_prompts import DEFAULT_STYLE, PromptMode, prompt_batch, render_prompts

TEMPLATE = ClipRankParams().prompt_template  # what a run ranks with


@dataclass(frozen=True)
class FloorRow:
    """One (mode, candidate count) measurement; seconds are medians over the repeats.

    Attributes:
        mode: visual prompt mode.
        candidates: number of candidates ranked.
        floor_seconds: the floor (prompts + one image forward + one text forward).
        prepare_seconds: of which making the prompts.
        clip_rank_seconds: ``clip_rank`` (fresh tool each time: nothing cached).
        loop_seconds: the per-candidate loop, or None when not run.
        repeats: timed repetitions behind each median (the loop runs once).
        scores_equal: ``clip_rank``'s scores equal the floor's exactly.
        loop_max_abs_diff: largest difference of the loop's scores from the floor's.
    """

    mode: str
    candidates: int
    floor_seconds: float
    prepare_seconds: float
    clip_rank_seconds: float
    loop_seconds: float | None
    repeats: int
    scores_equal: bool
    loop_max_abs_diff: float | None

    @property
    def ratio(self) -> float:
        """``clip_rank`` seconds over floor seconds."""
        return self.clip_rank_seconds / self.floor_seconds if self.floor_seconds else float("nan")


def synthetic_candidates(image: Image, n: int, seed: int = 0) -> Proposals:
    """``n`` elliptical candidate masks of varied size and place (seeded)."""
    h, w = image.size
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:h, :w]
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        ry, rx = rng.uniform(0.03, 0.3) * h, rng.uniform(0.03, 0.3) * w
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return Proposals.from_masks(masks, source="synthetic")


def _device(bundle: ClipBundle) -> torch.device:
    return next(bundle.model.parameters()).device


def floor_scores(
    bundle: ClipBundle, image: Image, props: Proposals, mode: PromptMode, text: str, precision: str
) -> tuple[np.ndarray, float]:
    """The floor: (scores, seconds spent making the prompts)."""
    device = _device(bundle)
    with torch.inference_mode():
        with timed(str(device)) as prep:
            batch = prompt_batch(
                image.pixels, props.masks, props.boxes, mode, bundle.image_size, bundle.mean, bundle.std,
                DEFAULT_STYLE, device,
            )  # fmt: skip
        tokens = bundle.tokenizer([text]).to(device)
        with autocast(device, precision):
            img = bundle.model.encode_image(batch, normalize=True).float()
            txt = bundle.model.encode_text(tokens, normalize=True).float()[0]
        return (img @ txt).cpu().numpy().astype(np.float32), prep.seconds


def loop_scores(
    bundle: ClipBundle, image: Image, props: Proposals, mode: PromptMode, text: str, precision: str
) -> np.ndarray:
    """One candidate at a time, prompts at the photo's resolution, open_clip's preprocessing."""
    from open_clip.transform import image_transform

    device = _device(bundle)
    preprocess = image_transform(bundle.image_size, is_train=False, mean=bundle.mean, std=bundle.std)
    scores = []
    with torch.inference_mode(), autocast(device, precision):
        txt = bundle.model.encode_text(bundle.tokenizer([text]).to(device), normalize=True).float()[0]
        for i in range(len(props)):
            (prompt,) = render_prompts(image.pixels, props.masks[i : i + 1], props.boxes[i : i + 1], mode)
            x = preprocess(PILImage.fromarray(prompt))[None].to(device)
            scores.append(float(bundle.model.encode_image(x, normalize=True).float()[0] @ txt))
    return np.asarray(scores, dtype=np.float32)


def clip_rank_scores(
    models: Models, image: Image, props: Proposals, mode: PromptMode, text: str
) -> np.ndarray:
    """``clip_rank``'s scores from a fresh tool on the shared model (no cached embeddings)."""
    return ClipRank(models.settings, bundle=models.clip).scores(image, props, mode, text)


def warm_up(models: Models, image: Image, query: str) -> None:
    """One untimed floor and ``clip_rank`` on two candidates: first-call costs (kernel
    selection, tokenizer set-up) must not land in the first measured row."""
    props = synthetic_candidates(image, 2)
    text = apply_template(TEMPLATE, query)
    floor_scores(models.clip, image, props, "crop", text, models.settings.precision)
    clip_rank_scores(models, image, props, "crop", text)


def measure_row(
    models: Models, image: Image, n: int, mode: PromptMode, query: str, repeats: int, loop: bool
) -> FloorRow:
    """Floor, ``clip_rank`` and (optionally) the loop for ``n`` candidates, interleaved."""
    device, precision = models.settings.device, models.settings.precision
    props = synthetic_candidates(image, n)
    _ = props.digest  # see the module docstring
    text = apply_template(TEMPLATE, query)
    floor_t, rank_t, prep_t = [], [], []
    floor, ranked = np.zeros(0), np.zeros(0)

    def run_floor() -> None:
        nonlocal floor
        with timed(device) as watch:
            floor, prep = floor_scores(models.clip, image, props, mode, text, precision)
        floor_t.append(watch.seconds)
        prep_t.append(prep)

    def run_rank() -> None:
        nonlocal ranked
        with timed(device) as watch:
            ranked = clip_rank_scores(models, image, props, mode, text)
        rank_t.append(watch.seconds)

    # Interleaved, so drift in machine load hits both alike, and each goes first in every
    # other round, so neither always pays for following the other (allocator, caches).
    for i in range(repeats):
        for run in (run_floor, run_rank) if i % 2 == 0 else (run_rank, run_floor):
            run()
    loop_s, diff = None, None
    if loop:
        with timed(device) as watch:
            looped = loop_scores(models.clip, image, props, mode, text, precision)
        loop_s, diff = watch.seconds, float(np.abs(looped - floor).max())
    return FloorRow(
        mode=mode,
        candidates=n,
        floor_seconds=statistics.median(floor_t),
        prepare_seconds=statistics.median(prep_t),
        clip_rank_seconds=statistics.median(rank_t),
        loop_seconds=loop_s,
        repeats=repeats,
        scores_equal=bool(np.array_equal(ranked, floor)),
        loop_max_abs_diff=diff,
    )
