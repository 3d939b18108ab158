"""Typed options: what the CLI builds once from its arguments and the library takes.

Defaults live here (and, for the controller's guards and budgets, in
:class:`agent.episode.EpisodeConfig`): the CLI declares its flags without defaults and only
overrides what the user gave, so a default is written in exactly one place. Library code and
tests build these objects directly; nothing below the CLI parses argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agent.controllers import ControllerSpec, check_controller_options, get_controller
from agent.episode import EpisodeConfig
from agent.vlm_limits import VLMLimits
from agent.vlm_profile import ProfileChoice
from bench.engines.options import ENGINES as ENGINES  # re-exported: the CLI lists them
from bench.engines.options import EngineOptions
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.perturb import PERTURBATIONS
from cache.store import LOCK_TIMEOUT_S
from tools.base import ToolSettings
from tools.errors import ConfigError
from tools.precision import Precision, check_precision
from tools.refine import RefineOptions

TOOLSETS: Mapping[str, tuple[str, str]] = {
    # name: (proposer, ranker)
    "models": ("sam_propose", "clip_rank"),
    "offline": ("region_propose", "attribute_rank"),
    "sam3": ("sam3_propose", "sam3_rank"),
}
CLIP_MODES = ("crop", "blur", "grey", "outline")
Refiner = Literal["rules", "vlm"]


@dataclass(frozen=True)
class ModelOptions:
    """Which tools run and how they are built.

    Attributes:
        weights: ``pretrained`` loads checkpoint files; ``random`` builds the same
            architectures with random weights (offline smoke runs and timing only).
        toolset: ``models`` (SAM + CLIP), ``offline`` (regions + attribute ranker), ``sam3``.
        proposer, ranker: tool names that override the toolset's.
        device: torch device (``None``: cuda if available, else cpu).
        checkpoint_dir: weight files folder (``None``: ``$REFSEG_CHECKPOINT_DIR`` or ./checkpoints).
        sam_model: SAM type (vit_b, vit_l, vit_h).
        sam_checkpoint: explicit SAM checkpoint file.
        points_per_side: SAM point grid size (``None``: the tool's default).
        clip_model, clip_pretrained: open_clip model name and pretrained tag (or a file).
        clip_mode: visual prompt for CLIP (``None``: the tool's default, crop).
        max_side: longest image side the models see.
        seed: seed of random weights.
        refiner: how the loop rewrites the query (``None``: the tool's default, rules; the
            suite then picks vlm when a VLM is configured).
        tool_options: per-tool settings by tool name (``--tool-option NAME.KEY=VALUE``),
            plugins included.
        precision, compile, compile_backend, encoder_batch, points_per_batch: the GPU path,
            as :class:`tools.base.ToolSettings` documents them (defaults are its defaults).
    """

    weights: Literal["pretrained", "random"] = "pretrained"
    toolset: str = "models"
    proposer: str | None = None
    ranker: str | None = None
    device: str | None = None
    checkpoint_dir: Path | None = None
    sam_model: str = "vit_b"
    sam_checkpoint: Path | None = None
    points_per_side: int | None = None
    clip_model: str = "ViT-B-16"
    clip_pretrained: str = "openai"
    clip_mode: str | None = None
    max_side: int = 2048
    seed: int = 0
    refiner: Refiner | None = None
    tool_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    precision: Precision = ToolSettings.precision
    compile: bool = ToolSettings.compile
    compile_backend: str = ToolSettings.compile_backend
    encoder_batch: int = ToolSettings.encoder_batch
    points_per_batch: int | None = ToolSettings.points_per_batch

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.encoder_batch < 1 or (self.points_per_batch is not None and self.points_per_batch < 1):
            raise ConfigError("--encoder-batch and --points-per-batch must be at least 1")
        if self.toolset not in TOOLSETS:
            raise ConfigError(f"unknown toolset {self.toolset!r}; choose one of {', '.join(TOOLSETS)}")
        if self.weights not in ("pretrained", "random"):
            raise ConfigError(f"--weights must be 'pretrained' or 'random', got {self.weights!r}")
        if self.clip_mode is not None and self.clip_mode not in CLIP_MODES:
            raise ConfigError(f"--clip-mode must be one of {', '.join(CLIP_MODES)}, got {self.clip_mode!r}")
        if self.refiner is not None and self.refiner not in ("rules", "vlm"):
            raise ConfigError(f"--refiner must be 'rules' or 'vlm', got {self.refiner!r}")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ConfigError("--points-per-side must be at least 1")
        if self.max_side < 16:
            raise ConfigError("--max-side must be at least 16 pixels")

    @property
    def tools(self) -> tuple[str, str]:
        """``(proposer, ranker)`` after the overrides."""
        proposer, ranker = TOOLSETS[self.toolset]
        return self.proposer or proposer, self.ranker or ranker


@dataclass(frozen=True)
class VLMOptions:
    """Where the VLM is (key from the environment; see :class:`agent.vlm.VLMConfig`) and how it
    answers (``profile``: :class:`agent.vlm_profile.ProfileChoice`, resolved into the config).

    ``None`` fields take :class:`agent.vlm.VLMConfig`'s defaults. The backoff fields are for
    tests and the chaos scorecard (retries at once); the CLI does not expose them.
    ``price_in`` / ``price_out``: the model's price in USD per million input / output tokens
    (``--vlm-price-in`` / ``--vlm-price-out``), for a model the built-in table does not know.
    ``max_concurrency``, ``rpm``, ``tpm``: the endpoint's limits (:class:`agent.vlm_limits.VLMLimits`)."""

    base_url: str | None = None
    model: str | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    backoff_base_s: float | None = None
    backoff_max_s: float | None = None
    price_in: float | None = None
    price_out: float | None = None
    profile: ProfileChoice = field(default_factory=ProfileChoice)
    max_concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        self.limits  # noqa: B018 - a bad limit is a one-line error now, not at the first request
        given = [p for p in (self.price_in, self.price_out) if p is not None]
        if len(given) == 1:
            raise ConfigError("give both --vlm-price-in and --vlm-price-out (USD per million tokens)")
        if any(p < 0 for p in given):
            raise ConfigError("--vlm-price-in and --vlm-price-out must be >= 0 (USD per million tokens)")

    def overrides(self) -> dict[str, Any]:
        """The fields given, as :class:`agent.vlm.VLMConfig` keyword arguments (except the
        prices, which need the model's name: see ``VLMConfig.with_price``)."""
        names = ("timeout_s", "max_retries", "backoff_base_s", "backoff_max_s")
        given = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return {**given, "limits": self.limits}

    @property
    def limits(self) -> VLMLimits:
        return VLMLimits.of(self.max_concurrency, self.rpm, self.tpm, self.timeout_s)


@dataclass(frozen=True)
class CacheOptions:
    """The disk cache of tool outputs.

    Attributes:
        directory: ``None``: ``$REFSEG_CACHE_DIR``, else ``~/.cache/refseg-loop``.
        enabled: ``False`` reads and writes no disk cache (``--no-cache``).
        timeout_s: longest wait for a cache database another process holds locked (then the
            cache is off for the run, with a warning; see :mod:`cache.store`).
    """

    directory: Path | None = None
    enabled: bool = True
    timeout_s: float = LOCK_TIMEOUT_S


@dataclass(frozen=True)
class EpisodeOptions:
    """Everything that defines how one episode runs: tools, controller, VLM, cache.

    ``episode`` carries the controller, the guard and the controllers' options; its proposer,
    ranker and tool arguments are filled from ``models`` when the runtime is built. The
    controller's name and every controller's options are checked when this is built (a
    one-line ``ConfigError``), before any example runs.
    """

    models: ModelOptions = field(default_factory=ModelOptions)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    vlm: VLMOptions = field(default_factory=VLMOptions)
    cache: CacheOptions = field(default_factory=CacheOptions)

    def __post_init__(self) -> None:
        check_controller_options({self.episode.controller: {}, **self.episode.controller_options})

    def for_data(self, empty_targets: bool) -> EpisodeOptions:
        """These options with ``not_found`` decided by the data set when not given: ``empty``
        where expressions may have no target (its protocol's ``empty_targets``); else it stays
        unset, which episodes read as ``keep`` (and ``config.json`` records as before)."""
        if self.episode.not_found is not None or not empty_targets:
            return self
        return replace(self, episode=replace(self.episode, not_found="empty"))

    @property
    def controller(self) -> ControllerSpec:
        """The chosen controller's spec."""
        return get_controller(self.episode.controller)

    @property
    def refiner(self) -> str:
        """The refiner the loop uses (``--refiner``, else ``--tool-option``, else the tool's default)."""
        chosen = self.models.refiner or self.models.tool_options.get("refine_query", {}).get("refiner")
        return str(chosen or RefineOptions().refiner)

    @property
    def needs_vlm(self) -> bool:
        """The controller requires the VLM, or it refines and the refiner is the VLM's."""
        spec = self.controller
        return spec.vlm == "required" or (spec.refines and self.refiner == "vlm")

    @property
    def wants_vlm(self) -> bool:
        """A VLM client is built when one is configured: it is needed, or the controller
        uses one when it is there (``vlm="optional"``)."""
        return self.needs_vlm or self.controller.vlm == "optional"

    def no_vlm_reason(self) -> str:
        """Why this run calls no VLM (when :attr:`wants_vlm` is false), for options that apply
        to a VLM only."""
        spec = self.controller
        if spec.refines:
            return f"--controller {spec.name} with the {self.refiner} refiner calls none (--refiner vlm does)"
        return f"--controller {spec.name} calls none"

    @property
    def vlm_flag(self) -> str:
        """The option that asked for a VLM, as the user wrote it (for error messages)."""
        if self.controller.vlm == "required":
            return f"--controller {self.episode.controller}"
        if self.models.refiner is None and self.refiner == "vlm":
            return "--tool-option refine_query.refiner=vlm"
        return "--refiner vlm"


@dataclass(frozen=True)
class DataSpec:
    """What selects (and alters) the examples; part of the result-defining configuration.

    Attributes:
        dataset: an adapter's name or alias, ``ADAPTER:SOURCE``, or a local file or folder in
            an adapter's layout (``refseg bench datasets`` lists them).
        split: the split (``None``: the adapter's default, e.g. ``validation``).
        n: number of images (``None``: all; synthetic: 20 scenes).
        per_image: ``all`` expressions of an image, or only the ``first``.
        seed_subset: a random ``n`` images by this seed (``None``: the first ``n``; synthetic: its seed).
        perturb: image perturbation (robustness runs).
        allow_outside_paths: read a row's image ``path`` even when it leads outside the data
            set's folder (off: such an example fails with the reason).
    """

    dataset: str = "moondream/refcoco-m"
    split: str | None = None
    n: int | None = None
    per_image: str = "all"
    seed_subset: int | None = None
    perturb: str = "clean"
    allow_outside_paths: bool = False

    def __post_init__(self) -> None:
        if self.perturb not in PERTURBATIONS:
            raise ConfigError(
                f"unknown perturbation {self.perturb!r}; choose one of {', '.join(PERTURBATIONS)}"
            )

    def open(self, cache_dir: str | None = None) -> Any:
        """The examples it selects, streamed (a :class:`bench.data.DataSource`; the
        perturbation applies later). Raises DatasetError when no adapter can read it."""
        from bench.data import DataRequest, open_dataset

        sel = (self.split, self.n, self.per_image, self.seed_subset, cache_dir, self.allow_outside_paths)
        return open_dataset(self.dataset, DataRequest(*sel))

    def load(self) -> Any:
        """Every example it selects, in memory (a :class:`bench.data.ExampleSet`)."""
        from bench.data import ExampleSet

        return ExampleSet.of(self.open())


@dataclass(frozen=True)
class RunOptions:
    """How a run goes; none of these change per-example results.

    Attributes:
        concurrency: examples in flight at once (with ``--engine ray``: in the whole cluster,
            shared among the workers, so the VLM sees at most this many calls at once).
        retry_failed: redo examples whose last record failed or fell back (a VLM outage).
        bootstrap: resamples for the confidence intervals (0 = none).
        quiet: no progress bar.
        limit: run at most this many new examples in this invocation (then stop; resumable).
        engine: which engine runs the episodes.
        max_fallback_rate: the run fails (exit 5) when more than this fraction of the
            examples that needed the VLM fell back (an example needed the VLM when its
            episode asked it at least once: a ``--refiner vlm`` rewrite or an agent turn;
            examples the guard settled first did not). 1 allows any.
    """

    concurrency: int = 4
    retry_failed: bool = False
    bootstrap: int = DEFAULT_BOOTSTRAP
    quiet: bool = False
    limit: int | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    max_fallback_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        workers = self.engine.workers
        if isinstance(workers, int) and workers > self.concurrency:
            raise ConfigError(
                f"--workers {workers} needs --concurrency {workers} or more: the examples in "
                "flight are shared among the workers"
            )
        if self.limit is not None and self.limit < 0:
            raise ConfigError("--limit must be 0 or more (the number of new examples to run now)")
        if self.bootstrap < 0:
            raise ConfigError("--bootstrap must be 0 (off) or a number of resamples")
        if not 0.0 <= self.max_fallback_rate <= 1.0:
            raise ConfigError(f"--max-fallback-rate must be between 0 and 1, got {self.max_fallback_rate}")


@dataclass(frozen=True)
class BenchOptions:
    """``refseg bench run``: one configuration over a data set into a run folder."""

    out: Path
    episode: EpisodeOptions = field(default_factory=EpisodeOptions)
    data: DataSpec = field(default_factory=DataSpec)
    run: RunOptions = field(default_factory=RunOptions)


@dataclass(frozen=True)
class SegmentOptions:
    """``refseg segment``: images (files or folders) and one expression.

    Attributes:
        images: image files or folders.
        expression: the referring expression.
        out: output folder.
        compare: also run one-shot side by side (``None``: on for several images).
    """

    images: tuple[Path, ...]
    expression: str
    out: Path = Path("out")
    episode: EpisodeOptions = field(default_factory=EpisodeOptions)
    compare: bool | None = None
