"""What ``refseg bench speed`` measures, as one frozen value with every default in one place.

No torch import here: the CLI reads the defaults for its help texts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.options import CLIP_MODES
from tools.base import ToolSettings, WeightsMode
from tools.errors import ConfigError
from tools.precision import Precision, check_precision
from tools.sam3.config import check_size as check_sam3_size

if TYPE_CHECKING:
    from tools.visual_prompts import PromptMode

Thresholds = Literal["default", "open"]
TINY = "tiny"  # --sam-model tiny / --clip-model tiny: the test-sized real architectures
SAM3 = "sam3"  # --sam-model sam3: SAM 3's stages, beside SAM 1's official generator
SAM1_MODELS = ("vit_b", "vit_l", "vit_h", TINY)


@dataclass(frozen=True)
class SpeedOptions:
    """Options of :func:`bench.benchmarks.speed.run.run_speed`; checked when built (one-line ``ConfigError``).

    The model and GPU-path fields mean what the fields of the same name in
    :class:`bench.options.ModelOptions` and :class:`tools.base.ToolSettings` mean, and
    default to the same values.

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        weights: ``pretrained`` (checkpoint files) or ``random`` (timing does not depend on
            weight values; mask agreement is then a weaker check).
        checkpoint_dir: SAM weight folder (default: ``$REFSEG_CHECKPOINT_DIR`` or ``./checkpoints``).
        sam_model: ``vit_b``, ``vit_l``, ``vit_h``, ``tiny`` or ``sam3`` (SAM 3's stages: vision
            encode, text encode, detector + mask decode, post-process; ``reference`` then runs
            SAM 1's official generator beside it).
        sam_checkpoint: explicit SAM checkpoint file.
        sam3_size: SAM 3's architecture, ``full`` or ``tiny`` (``sam_model`` sam3).
        sam3_checkpoint: SAM 3 safetensors file (default: ``CHECKPOINT_DIR/sam3/model.safetensors``).
        reference_sam_model: the SAM 1 model whose official generator runs beside SAM 3.
        clip_model: open_clip model name, or ``tiny``.
        clip_pretrained: open_clip tag or checkpoint file.
        seed: seed of random weights.
        points_per_side: SAM point grid (``points_per_side ** 2`` prompts).
        points_per_batch: prompts per decoder batch (None: the device's default).
        thresholds: ``default``: SAM's quality filters and NMS as the tool ships them;
            ``open``: all off (random weights then still give many masks).
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast for SAM and CLIP).
        compile: ``torch.compile`` the SAM encoder/decoder and the CLIP towers.
        compile_backend: the ``torch.compile`` backend.
        encoder_batch: images per SAM encoder forward (the images are proposed concurrently
            so the encoder can batch them).
        images: photos to run on; when empty, ``generated_images`` generated scenes.
        generated_images: how many scenes to generate when no photos are given.
        generated_size: ``(H, W)`` of generated scenes.
        max_side: longest image side the models see (bigger photos are downscaled).
        query: text the candidates are ranked against.
        clip_mode: visual prompt mode of the rank stage.
        reference: also run segment-anything's ``SamAutomaticMaskGenerator`` on the same
            model object and images: time ratio and mask agreement.
        rank_floor: also measure ``clip_rank`` against the compute floor.
        rank_candidates: candidate counts of the rank-floor measurement.
        rank_modes: visual prompt modes of the rank-floor measurement.
        rank_repeats: timed repetitions per rank-floor row (the median is reported).
        rank_loop: include the per-candidate loop (one prompt per forward) in the rank floor.
        warmup: run once untimed first (None: on CUDA or when compiling).
        json_path: write the report there as JSON too.
    """

    device: str = "auto"
    weights: WeightsMode = ToolSettings.weights
    checkpoint_dir: Path | None = None
    sam_model: str = ToolSettings.sam_model_type
    sam_checkpoint: Path | None = None
    sam3_size: str = "full"
    sam3_checkpoint: Path | None = None
    reference_sam_model: str = ToolSettings.sam_model_type
    clip_model: str = ToolSettings.clip_model
    clip_pretrained: str = ToolSettings.clip_pretrained
    seed: int = ToolSettings.seed
    points_per_side: int = 16
    points_per_batch: int | None = ToolSettings.points_per_batch
    thresholds: Thresholds = "default"
    precision: Precision = ToolSettings.precision
    compile: bool = ToolSettings.compile
    compile_backend: str = ToolSettings.compile_backend
    encoder_batch: int = ToolSettings.encoder_batch
    images: tuple[Path, ...] = ()
    generated_images: int = 2
    generated_size: tuple[int, int] = (534, 800)
    max_side: int = ToolSettings.max_side
    query: str = "the dog"
    clip_mode: PromptMode = "crop"
    reference: bool = False
    rank_floor: bool = False
    rank_candidates: tuple[int, ...] = (16, 64, 256)
    rank_modes: tuple[PromptMode, ...] = ("crop",)
    rank_repeats: int = 3
    rank_loop: bool = True
    warmup: bool | None = None
    json_path: Path | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SpeedOptions:
        """Check the values; returns ``self``.

        Raises:
            ConfigError: the first bad value, in one line that says what to use instead.
        """
        check_precision(self.precision)
        check_sam3_size(self.sam3_size)
        if self.reference_sam_model not in SAM1_MODELS:
            raise ConfigError(f"--reference-sam-model must be one of {', '.join(SAM1_MODELS)}")
        if self.sam_model == SAM3 and self.rank_floor:
            raise ConfigError(
                "--rank-floor times clip_rank on SAM 1's candidates; drop it with --sam-model sam3"
            )
        _at_least("points per side", self.points_per_side, 1)
        if self.points_per_side > 64:
            raise ConfigError(f"points per side must be at most 64, got {self.points_per_side}")
        if self.points_per_batch is not None:
            _at_least("points per batch", self.points_per_batch, 1)
        _at_least("encoder batch", self.encoder_batch, 1)
        _at_least("rank repeats", self.rank_repeats, 1)
        _at_least("max side", self.max_side, 32)
        if not self.images:
            _at_least("generated images", self.generated_images, 1)
            if min(self.generated_size) < 96:
                raise ConfigError(f"generated images need at least 96x96 pixels, got {self.generated_size}")
        if self.thresholds not in ("default", "open"):
            raise ConfigError(f"unknown thresholds {self.thresholds!r}; use default or open")
        for mode in (self.clip_mode, *self.rank_modes):
            if mode not in CLIP_MODES:
                raise ConfigError(f"unknown visual prompt mode {mode!r}; use one of {', '.join(CLIP_MODES)}")
        if self.rank_floor and not self.rank_candidates:
            raise ConfigError("the rank floor needs at least one candidate count (e.g. 16,64,256)")
        for n in self.rank_candidates:
            _at_least("rank candidates", n, 1)
        if not self.query.strip():
            raise ConfigError("the query is empty; pass a short description such as 'the dog'")
        return self

    def as_json(self) -> dict[str, Any]:
        """The options as JSON-able values (paths as strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = [str(v) if isinstance(v, Path) else v for v in value]
        return out


def _at_least(what: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{what} must be at least {low}, got {value}")
