"""Build what a speed run needs once: settings, the SAM and CLIP models, the images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segment_anything.modeling import Sam

from bench.benchmarks.speed.options import SpeedOptions
from bench.runtime import tiny_models
from tools.base import ToolSettings, default_checkpoint_dir
from tools.clip_loading import ClipBundle, load_clip
from tools.images import load_image, working_copy
from tools.offline.scenes import generate_scene
from tools.sam_loading import coerce_config, load_sam
from tools.types import Image


@dataclass(frozen=True)
class NamedImage:
    name: str
    image: Image


@dataclass
class Models:
    """The models of a run, each built once and shared by every measurement."""

    settings: ToolSettings
    sam: Sam
    clip: ClipBundle


def tool_settings(options: SpeedOptions, device: str) -> ToolSettings:
    """The :class:`ToolSettings` the tools of a speed run get."""
    sam_type, clip_model, tiny_options = tiny_models(options.sam_model, options.clip_model)
    return ToolSettings(
        weights=options.weights,
        device=device,
        checkpoint_dir=options.checkpoint_dir or default_checkpoint_dir(),
        sam_model_type=sam_type,
        sam_checkpoint=options.sam_checkpoint,
        clip_model=clip_model,
        clip_pretrained=options.clip_pretrained,
        seed=options.seed,
        max_side=options.max_side,
        precision=options.precision,
        compile=options.compile,
        compile_backend=options.compile_backend,
        encoder_batch=options.encoder_batch,
        points_per_batch=options.points_per_batch,
        options=tiny_options,
    )


def build_models(settings: ToolSettings) -> Models:
    """Load SAM and CLIP as ``settings`` say (checkpoint errors say what to do)."""
    config = coerce_config(settings.options.get("sam_propose", {}).get("config"))
    sam = load_sam(settings, config)
    clip = load_clip(
        settings.clip_model,
        settings.clip_pretrained,
        weights=settings.weights,
        seed=settings.seed,
        device=settings.device,
    )
    return Models(settings, sam, clip)


def load_images(options: SpeedOptions) -> list[NamedImage]:
    """The photos given (downscaled to ``max_side``), else generated scenes."""
    if options.images:
        return [
            NamedImage(Path(p).name, working_copy(load_image(p), options.max_side)) for p in options.images
        ]
    return [
        NamedImage(f"generated-{i}", Image.from_array(generate_scene(i, options.generated_size).image))
        for i in range(options.generated_images)
    ]
