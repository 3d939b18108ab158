"""``run_speed``: build the models once, then the timed pass, the reference and the rank floor."""

from __future__ import annotations

import numpy as np
import torch

from bench.benchmarks.speed.machine import device_name, resolve_device, timed
from bench.benchmarks.speed.options import SpeedOptions
from bench.benchmarks.speed.pipeline import PassResult, propose_all, rank_one, run_pass, sam_params
from bench.benchmarks.speed.rank_floor import FloorRow, measure_row, warm_up
from bench.benchmarks.speed.reference import run_reference
from bench.benchmarks.speed.report import ImageRow, ReferenceSummary, SpeedReport, write_speed_json
from bench.benchmarks.speed.setup import Models, NamedImage, build_models, load_images, tool_settings
from tools.accel import StageClock, device_type
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import Image

MAX_PROPOSALS = 1000  # the tool's cap: the open comparison keeps every mask it can


def _warm_up(models: Models, tool: SamPropose, images: list[NamedImage], params: SamProposeParams) -> float:
    """One untimed propose and rank on noise images shaped like the first image (so no
    embedding of a measured image gets cached, and compiled graphs see the same shapes)."""
    rng = np.random.default_rng(0)
    h, w = images[0].image.size
    count = min(len(images), models.settings.encoder_batch)
    noise = [
        NamedImage(f"warm-up-{i}", Image.from_array(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
        for i in range(count)
    ]
    with timed(models.settings.device) as watch:
        proposals, _ = propose_all(tool, noise, params, concurrent=count > 1)
        rank_one(models, noise[0], proposals[0], "crop", "warm-up", StageClock(models.settings.device))
    return watch.seconds


def _notes(options: SpeedOptions, device: str) -> list[str]:
    notes = []
    if options.weights == "random":
        notes.append("random weights: the masks are meaningless, the timing is not")
        if options.thresholds == "default":
            notes.append(
                "with random weights few masks survive SAM's default filters: post-processing and "
                "ranking do less work than with real weights (--thresholds open does more)"
            )
    if options.encoder_batch > 1:
        notes.append("images were proposed concurrently (encoder batch): propose seconds are a total")
    if options.reference and options.precision != "fp32":
        notes.append(f"the official generator runs in fp32, refseg in {options.precision}")
    if device_type(device) == "cpu":
        notes.append(f"{torch.get_num_threads()} torch CPU threads")
    return notes


def _image_rows(images: list[NamedImage], result: PassResult) -> list[ImageRow]:
    sequential = len(result.propose_seconds) == len(images)
    return [
        ImageRow(
            named.name,
            named.image.height,
            named.image.width,
            len(props),
            result.propose_seconds[i] if sequential else None,
        )
        for i, (named, props) in enumerate(zip(images, result.proposals, strict=True))
    ]


def _reference(
    options: SpeedOptions,
    models: Models,
    tool: SamPropose,
    images: list[NamedImage],
    params: SamProposeParams,
    result: PassResult,
) -> ReferenceSummary:
    open_params = None
    if options.thresholds != "open":
        open_params = sam_params(options.points_per_side, "open")
        open_params = open_params.model_copy(update={"max_proposals": MAX_PROPOSALS})
    ref = run_reference(models, tool, images, params, options.thresholds, result.proposals, open_params)
    n = len(images)
    return ReferenceSummary(
        official_seconds_per_image=sum(ref.official_seconds) / n,
        ours_seconds_per_image=sum(result.propose_seconds) / n,
        agreements=ref.agreements,
        peak_memory=ref.peak,
    )


def _rank_floor(options: SpeedOptions, models: Models, image: Image) -> list[FloorRow]:
    warm_up(models, image, options.query)
    return [
        measure_row(models, image, n, mode, options.query, options.rank_repeats, options.rank_loop)
        for mode in options.rank_modes
        for n in options.rank_candidates
    ]


def run_speed(options: SpeedOptions) -> SpeedReport:
    """Measure propose + rank on the options' images; see :class:`SpeedReport`.

    Raises:
        ConfigError: bad options, or a device that is not there.
        CheckpointError: pretrained weights that are missing (the message says what to do).
        InputError: an image that cannot be read.
    """
    device = resolve_device(options.device)
    settings = tool_settings(options, device)
    images = load_images(options)
    models = build_models(settings)
    tool = SamPropose(settings, model=models.sam)
    params = sam_params(options.points_per_side, options.thresholds)
    warm = options.warmup if options.warmup is not None else device_type(device) == "cuda" or options.compile
    warmup_seconds = _warm_up(models, tool, images, params) if warm else None
    result = run_pass(models, tool, images, params, options.clip_mode, options.query)
    reference = _reference(options, models, tool, images, params, result) if options.reference else None
    floor = _rank_floor(options, models, images[0].image) if options.rank_floor else []
    report = SpeedReport(
        options=options.as_json(),
        device=device,
        device_name=device_name(device),
        torch_version=torch.__version__,
        points_per_batch=tool.points_per_batch(params),
        images=_image_rows(images, result),
        stage_seconds={k: v / len(images) for k, v in result.stage_seconds.items()},
        wall_seconds=result.wall_seconds,
        peak_memory=result.peak,
        warmup_seconds=warmup_seconds,
        reference=reference,
        rank_floor=floor,
        notes=_notes(options, device),
    )
    if options.json_path is not None:
        write_speed_json(report, options.json_path)
    return report
