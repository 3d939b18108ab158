"""``refseg bench speed --sam-model sam3``: SAM 3's stages per image, beside SAM 1's official
automatic mask generator on the same images.

Per image, SAM 3 answers the query from scratch (its kept encodings are dropped first, so
every image pays the vision and the text encoder), timed per stage: vision encode (backbone
and neck), text encode, detect (DETR encoder and decoder, mask decoder, scores) and
post-process (threshold, masks resized to the image, to the host). Then a second query on
the same image: the encoding is reused, so it costs text, detect and post-process only (what
every rewrite of the loop and every other expression on the image costs). With
``--reference``, segment-anything's ``SamAutomaticMaskGenerator`` (``--reference-sam-model``,
default vit_b; ``--points-per-side``, ``--thresholds``) runs on the same images in the same
process: its seconds per image, and the ratio.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from segment_anything import SamAutomaticMaskGenerator

from bench.benchmarks.speed.machine import PeakMemory, device_name, peak_memory, resolve_device, timed
from bench.benchmarks.speed.options import SpeedOptions
from bench.benchmarks.speed.pipeline import OPEN_THRESHOLDS
from bench.benchmarks.speed.setup import NamedImage, load_images, tool_settings
from tools.accel import default_points_per_batch, device_type
from tools.sam3.propose import Sam3Propose, Sam3ProposeParams
from tools.sam_loading import coerce_config, load_sam
from tools.sam_propose import SamProposeParams

STAGES = ("vision_encode", "text_encode", "detect", "postprocess")
STAGE_LABELS = {
    "vision_encode": "vision encode",
    "text_encode": "text encode",
    "detect": "detector + mask decode",
    "postprocess": "post-process",
}
OPEN = Sam3ProposeParams(threshold=0.0, max_instances=200)  # every query slot becomes an instance


@dataclass(frozen=True)
class Sam3ImageRow:
    """One image: its size, the instances kept, the first query's and a second query's seconds."""

    name: str
    height: int
    width: int
    instances: int
    seconds: float
    requery_seconds: float


@dataclass(frozen=True)
class Sam1Reference:
    """SAM 1's official automatic generator on the same images."""

    model: str
    points_per_side: int
    seconds_per_image: float
    masks_per_image: float
    peak_memory: PeakMemory | None


@dataclass
class Sam3SpeedReport:
    """Everything one ``bench speed --sam-model sam3`` run measured (seconds are per image)."""

    options: dict[str, Any]
    device: str
    device_name: str
    torch_version: str
    parameters: int
    setup_seconds: float
    images: list[Sam3ImageRow]
    stage_seconds: dict[str, float]
    requery_stage_seconds: dict[str, float]
    peak_memory: PeakMemory | None
    warmup_seconds: float | None = None
    reference: Sam1Reference | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return sum(i.seconds for i in self.images) / max(1, len(self.images))

    @property
    def requery_seconds_per_image(self) -> float:
        return sum(i.requery_seconds for i in self.images) / max(1, len(self.images))

    @property
    def ratio(self) -> float:
        """SAM 3's seconds per image over SAM 1's generator's (above 1: SAM 3 is slower)."""
        ref = self.reference
        return self.seconds_per_image / ref.seconds_per_image if ref and ref.seconds_per_image else math.nan

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds_per_image"] = self.seconds_per_image
        out["requery_seconds_per_image"] = self.requery_seconds_per_image
        out["ratio_to_reference"] = self.ratio
        return out


def _tool(options: SpeedOptions, device: str) -> Sam3Propose:
    settings = tool_settings(options, device)  # its SAM 1 fields go unused
    sam3: dict[str, Any] = {"size": options.sam3_size}
    if options.sam3_checkpoint is not None:
        sam3["checkpoint"] = str(options.sam3_checkpoint)
    return Sam3Propose(dataclasses.replace(settings, options={"sam3_propose": sam3}))


def _requery(query: str) -> str:
    return f"{query} on the left"


def _pass(tool: Sam3Propose, images: list[NamedImage], query: str, params: Sam3ProposeParams) -> Any:
    """Each image: a first query from scratch, then a second one on its kept encoding."""
    engine = tool.engine()
    clock = engine.counters.stages
    clock.sync = True
    totals = {name: 0.0 for name in STAGES}
    requery = {name: 0.0 for name in STAGES}
    rows = []
    for named in images:
        engine.clear()
        clock.reset()
        with timed(str(engine.device)) as first:
            found = tool.propose_sync(named.image, query, params)
        for name in STAGES:
            totals[name] += clock.seconds.get(name, 0.0)
        clock.reset()
        with timed(str(engine.device)) as second:
            tool.propose_sync(named.image, _requery(query), params)
        for name in STAGES:
            requery[name] += clock.seconds.get(name, 0.0)
        image = named.image
        rows.append(
            Sam3ImageRow(named.name, image.height, image.width, len(found), first.seconds, second.seconds)
        )
    n = max(1, len(images))
    return rows, {k: v / n for k, v in totals.items()}, {k: v / n for k, v in requery.items()}


def _reference(options: SpeedOptions, device: str, images: list[NamedImage]) -> Sam1Reference:
    ref = dataclasses.replace(options, sam_model=options.reference_sam_model)
    settings = tool_settings(ref, device)
    sam = load_sam(settings, coerce_config(settings.options.get("sam_propose", {}).get("config")))
    params = SamProposeParams(points_per_side=options.points_per_side)
    if options.thresholds == "open":
        params = params.model_copy(update=OPEN_THRESHOLDS)
    generator = SamAutomaticMaskGenerator(
        sam,
        points_per_side=params.points_per_side,
        points_per_batch=options.points_per_batch or default_points_per_batch(device),
        pred_iou_thresh=params.pred_iou_thresh,
        stability_score_thresh=params.stability_score_thresh,
        box_nms_thresh=params.box_nms_thresh,
    )
    seconds, masks = 0.0, 0
    with peak_memory(device) as memory:
        for named in images:
            with timed(device) as watch:
                masks += len(generator.generate(named.image.pixels))
            seconds += watch.seconds
    n = max(1, len(images))
    return Sam1Reference(
        options.reference_sam_model, params.points_per_side, seconds / n, masks / n, memory.peak
    )


def run_sam3_speed(options: SpeedOptions) -> Sam3SpeedReport:
    """Measure SAM 3 on the options' images (and SAM 1's generator beside it with ``reference``).

    Raises:
        ConfigError, CheckpointError, InputError: as ``bench speed`` does.
    """
    device = resolve_device(options.device)
    images = load_images(options)
    tool = _tool(options, device)
    start = time.perf_counter()
    tool.setup()
    setup = time.perf_counter() - start
    params = OPEN if options.thresholds == "open" else Sam3ProposeParams()
    warm = options.warmup if options.warmup is not None else device_type(device) == "cuda" or options.compile
    warmup = None
    if warm:
        with timed(device) as watch:
            _pass(tool, images[:1], "warm-up", params)
        warmup = watch.seconds
    with peak_memory(device) as memory:
        rows, stages, requery = _pass(tool, images, options.query, params)
    model = tool.engine().model
    return Sam3SpeedReport(
        options=options.as_json(),
        device=device,
        device_name=device_name(device),
        torch_version=torch.__version__,
        parameters=sum(p.numel() for p in model.parameters()),
        setup_seconds=setup,
        images=rows,
        stage_seconds=stages,
        requery_stage_seconds=requery,
        peak_memory=memory.peak,
        warmup_seconds=warmup,
        reference=_reference(options, device, images) if options.reference else None,
        notes=_notes(options, device),
    )


def _notes(options: SpeedOptions, device: str) -> list[str]:
    notes = []
    if options.weights == "random":
        notes.append("random weights: the masks are meaningless, the timing is not")
        if options.thresholds == "default":
            notes.append("random SAM 3 scores (about 0.25) stay under the 0.5 threshold: no instance is "
                         "post-processed (--thresholds open keeps every query slot)")  # fmt: skip
    if options.reference and options.precision != "fp32":
        notes.append(f"SAM 1's official generator runs in fp32, SAM 3 in {options.precision}")
    if device_type(device) == "cpu":
        notes.append(f"{torch.get_num_threads()} torch CPU threads")
    return notes


def format_sam3_table(r: Sam3SpeedReport) -> str:
    """The report as ``bench speed --sam-model sam3`` prints it."""
    o = r.options
    sizes = ", ".join(f"{i.name} {i.width}x{i.height}" for i in r.images)
    instances = sum(i.instances for i in r.images) / max(1, len(r.images))
    lines = [
        f"refseg bench speed on {r.device} ({r.device_name}), torch {r.torch_version}",
        f"SAM 3 {o['sam3_size']} ({r.parameters / 1e6:.1f} M parameters, {o['weights']} weights), "
        f"{o['precision']}{', compiled' if o['compile'] else ''}, {o['thresholds']} thresholds; "
        f"model set-up {r.setup_seconds:.1f} s",
        f"{len(r.images)} image(s): {sizes}; query {o['query']!r}, then {_requery(o['query'])!r}",
        "",
        f"{'stage':<26}{'s/image':>10}{'2nd query':>11}",
    ]
    for name, label in STAGE_LABELS.items():
        lines.append(f"{label:<26}{r.stage_seconds[name]:>10.3f}{r.requery_stage_seconds[name]:>11.3f}")
    lines.append(
        f"{'total (wall)':<26}{r.seconds_per_image:>10.3f}{r.requery_seconds_per_image:>11.3f}"
        f"   ({instances:.1f} instances/image)"
    )
    if r.peak_memory is not None:
        lines.append(f"peak memory: {r.peak_memory.describe()}")
    if r.warmup_seconds is not None:
        lines.append(f"warm-up (untimed, compilation included): {r.warmup_seconds:.2f} s")
    if r.reference is not None:
        ref = r.reference
        lines += [
            "",
            f"beside it: segment-anything SamAutomaticMaskGenerator, SAM 1 {ref.model}, "
            f"{ref.points_per_side}x{ref.points_per_side} points, same images, fp32",
            f"{'s/image':<26}{'SAM 3':>10}{'SAM 1':>10}{'ratio':>10}",
            f"{'':<26}{r.seconds_per_image:>10.3f}{ref.seconds_per_image:>10.3f}{r.ratio:>9.3g}x "
            "(SAM 3 / SAM 1)",
            f"SAM 1 masks/image {ref.masks_per_image:.1f}"
            + (f"; peak memory: {ref.peak_memory.describe()}" if ref.peak_memory else ""),
        ]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
