"""From :class:`bench.options.EpisodeOptions` to what runs: settings, registry, cache, VLM.

:func:`build_runtime` is the one place options become tool settings and an episode
configuration; :func:`describe_config` derives ``config.json`` from those objects (every
field, so a new setting is covered without editing a list).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio

from agent.controllers import get_controller
from agent.episode import EpisodeConfig
from agent.vlm_profile import profile_of
from bench.options import TOOLSETS, EpisodeOptions, ModelOptions
from cache.store import ToolCache
from tools.base import ToolSettings, default_checkpoint_dir
from tools.errors import ConfigError
from tools.registry import ToolRegistry

T = TypeVar("T")

# ToolSettings fields that say where or how fast, not what: left out of the resume check
# (config.json records them under "run"). Precision changes results: it is not among them.
NOT_RESULT_SETTINGS = frozenset(
    {"device", "checkpoint_dir", "compile", "compile_backend", "encoder_batch", "points_per_batch"}
)
# Recorded whatever the tools read: the session's working copy and the tools' options.
SESSION_SETTINGS = frozenset({"max_side", "device", "options"})
TINY = "tiny"  # --sam-model tiny / --clip-model tiny: the test-sized real architectures


def tiny_models(sam_model: str, clip_model: str) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """``(sam_model_type, clip_model, tool options)`` for ``--sam-model`` / ``--clip-model``,
    where ``tiny`` is the test-sized SAM (``sam_propose.config=tiny``) or CLIP architecture."""
    options: dict[str, dict[str, Any]] = {}
    if sam_model == TINY:
        sam_model, options["sam_propose"] = "vit_b", {"config": TINY}
    if clip_model == TINY:
        from tools.clip_loading import register_tiny_clip

        clip_model = register_tiny_clip()
    return sam_model, clip_model, options


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


@dataclass
class Runtime:
    """What episodes run with: tool settings, episode configuration, tools, cache and VLM.

    ``options`` are the options it was built from (:func:`build_runtime`): a Ray worker
    builds its own runtime from them, so they must describe this runtime exactly.
    """

    settings: ToolSettings
    config: EpisodeConfig
    registry: ToolRegistry
    cache: ToolCache | None
    vlm: Any | None = None
    notes: list[str] = field(default_factory=list)
    options: EpisodeOptions | None = None

    @property
    def settings_read(self) -> frozenset[str] | None:
        """The settings the run's tools read (``None``: possibly all): what it records."""
        names = {self.config.proposer, self.config.ranker, self.config.refiner, *self.settings.options}
        return self.registry.settings_read(sorted(names))

    async def aclose_vlm(self) -> None:
        """Close the VLM client's connections, shielded from cancellation.

        The SDK's connection pool belongs to the event loop that used it: close it on that
        loop, or it fails to close once the loop is gone.
        """
        aclose = getattr(self.vlm, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()

    async def closing_vlm(self, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()``, then the VLM client closed on this event loop (see :meth:`aclose_vlm`)."""
        try:
            return await work()
        finally:
            await self.aclose_vlm()

    async def drain_cache(self) -> None:
        """Wait for the cache writes still queued (shielded from cancellation), so the run's
        record of the cache's health counts them."""
        if self.cache is not None:
            with anyio.CancelScope(shield=True):
                await self.cache.drain()

    def close(self) -> None:
        """Close the tools (models, threads) and the cache."""
        self.registry.close()
        if self.cache is not None:
            self.cache.close()


def build_vlm(options: EpisodeOptions) -> Any:
    """The VLM client, or a one-line ConfigError naming the option that asked for it."""
    from agent.redaction import url_secrets
    from agent.tracing import register_secret
    from agent.transcript import log_vlm_call
    from agent.vlm import VLMClient, VLMConfig

    vlm = options.vlm
    profile = vlm.profile.resolve()
    config = VLMConfig.from_env(base_url=vlm.base_url, model=vlm.model, profile=profile, **vlm.overrides())
    reason = config.vlm_unavailable_reason()
    if reason:
        raise ConfigError(f"{options.vlm_flag} needs a VLM: {reason}")
    if vlm.price_in is not None and vlm.price_out is not None:
        config = config.with_price(vlm.price_in, vlm.price_out)
    for secret in (config.api_key, *url_secrets(config.base_url)):
        register_secret(secret)  # redacted from every trace, log and file from now on
    return VLMClient(config, on_call=log_vlm_call)


SAM3_TOOLS = frozenset({"sam3_propose", "sam3_rank"})


def _random_sam3(models: ModelOptions) -> bool:
    """Random SAM 3 weights with no threshold set: random scores sit near 0.5 x 0.5, so none
    would pass the 0.5 threshold and a smoke run would always find nothing."""
    given = "threshold" in models.tool_options.get("sam3_propose", {})
    return models.weights == "random" and bool(SAM3_TOOLS & set(models.tools)) and not given


def _optional_vlm(options: EpisodeOptions, notes: list[str]) -> Any:
    """The VLM client of a controller that uses one when it is there (``vlm="optional"``):
    built when one is configured, else ``None`` and a note saying the run goes without.

    Raises:
        ConfigError: VLM limits given to a run that calls no VLM.
    """
    vlm = options.vlm
    if not options.wants_vlm:
        vlm.limits.refuse_unused(options.no_vlm_reason())  # they would limit nothing
        return None
    from agent.vlm import VLMConfig

    reason = VLMConfig.from_env(base_url=vlm.base_url, model=vlm.model).vlm_unavailable_reason()
    if reason:
        flags = vlm.limits.flags
        unused = f" ({', '.join(flags)} limit{'' if len(flags) > 1 else 's'} nothing)" if flags else ""
        notes.append(f"--controller {options.episode.controller} runs without a VLM: {reason}{unused}")
        return None
    return build_vlm(options)


def _tool_options(options: EpisodeOptions, tiny: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    tools = {name: dict(values) for name, values in options.models.tool_options.items()}
    for name, values in tiny.items():  # --sam-model tiny; an explicit --tool-option wins
        tools[name] = {**values, **tools.get(name, {})}
    # --refiner is a named shortcut of this tool option; the config always says which ran.
    tools.setdefault("refine_query", {})["refiner"] = options.refiner
    if _random_sam3(options.models):
        tools.setdefault("sam3_propose", {})["threshold"] = 0.0  # see _tool_args' note
    if tools.get("sam3_propose") and not SAM3_TOOLS & set(options.models.tools):
        # --sam3-size / --sam3-checkpoint (shortcuts of these) would silently do nothing.
        raise ConfigError(
            f"SAM 3 options ({', '.join(sorted(tools['sam3_propose']))}) apply to the SAM 3 tools only; "
            "add --toolset sam3 or drop them"
        )
    return tools


def _check_accel_flags(models: ModelOptions, proposer: str, ranker: str) -> None:
    """GPU-path flags for tools that are not in the run would silently do nothing: refuse them."""
    sam_only = {
        "--points-per-batch": models.points_per_batch is not None,
        "--encoder-batch": models.encoder_batch != ToolSettings.encoder_batch,
    }
    given = [flag for flag, on in sam_only.items() if on]
    if given and proposer != "sam_propose":
        raise ConfigError(f"{', '.join(given)} apply to sam_propose only")
    if (models.precision != ToolSettings.precision or models.compile) and not (
        {proposer, ranker} & {"sam_propose", "clip_rank", *SAM3_TOOLS}
    ):
        raise ConfigError(
            "--precision and --compile apply to sam_propose, clip_rank and the SAM 3 tools only"
        )


def _tool_args(
    models: ModelOptions, proposer: str, ranker: str
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Fixed arguments of the proposer and ranker, and notes about them."""
    propose_args: dict[str, Any] = {}
    rank_args: dict[str, Any] = {}
    notes: list[str] = []
    if models.points_per_side is not None:
        if proposer != "sam_propose":
            raise ConfigError("--points-per-side applies to sam_propose only")
        propose_args["points_per_side"] = models.points_per_side
    _check_accel_flags(models, proposer, ranker)
    if models.weights == "random" and proposer == "sam_propose":
        # Random weights predict meaningless IoU/stability and near-identical masks: SAM's
        # filters and NMS would leave one candidate or none. Keep up to max_proposals so a
        # smoke run ranks a realistic number of candidates.
        propose_args.setdefault("pred_iou_thresh", 0.0)
        propose_args.setdefault("stability_score_thresh", 0.0)
        propose_args.setdefault("box_nms_thresh", 1.0)
        notes.append("random weights: SAM quality thresholds and NMS disabled")
    if _random_sam3(models):
        notes.append("random weights: SAM 3's score threshold set to 0 (random scores sit near 0.25)")
    if models.clip_mode is not None:
        if ranker != "clip_rank":
            raise ConfigError("--clip-mode applies to clip_rank only")
        rank_args["mode"] = models.clip_mode
    return propose_args, rank_args, notes


def build_runtime(options: EpisodeOptions) -> Runtime:
    """Settings, episode config, registry, cache and VLM client from the options.

    Raises:
        ConfigError: unknown tools, options that do not apply, a VLM that is needed but not
            configured.
    """
    models = options.models
    proposer, ranker = models.tools
    propose_args, rank_args, notes = _tool_args(models, proposer, ranker)
    vlm = build_vlm(options) if options.needs_vlm else _optional_vlm(options, notes)
    price_note = vlm.config.price_note() if vlm is not None else None
    if price_note:
        notes.append(price_note)
    sam_type, clip_model, tiny = tiny_models(models.sam_model, models.clip_model)
    settings = ToolSettings(
        weights=models.weights,
        # The offline toolset needs no torch: do not import it (seconds) just to pick cpu.
        device=models.device or ("cpu" if (proposer, ranker) == TOOLSETS["offline"] else default_device()),
        checkpoint_dir=models.checkpoint_dir or default_checkpoint_dir(),
        sam_model_type=sam_type,
        sam_checkpoint=models.sam_checkpoint,
        clip_model=clip_model,
        clip_pretrained=models.clip_pretrained,
        seed=models.seed,
        max_side=models.max_side,
        precision=models.precision,
        compile=models.compile,
        compile_backend=models.compile_backend,
        encoder_batch=models.encoder_batch,
        points_per_batch=models.points_per_batch,
        vlm=vlm,
        options=_tool_options(options, tiny),
    )
    config = dataclasses.replace(
        options.episode,
        proposer=proposer,
        ranker=ranker,
        propose_args={**propose_args, **options.episode.propose_args},
        rank_args={**rank_args, **options.episode.rank_args},
    )
    registry = ToolRegistry(settings)
    for name in (config.proposer, config.ranker, config.refiner, *settings.options):
        registry.spec(name)  # unknown tool names (also in --tool-option) fail now
    registry.check_options(settings.options)  # and bad option values, in one line
    registry.check_arguments(config.proposer, config.propose_args)  # --points-per-side 100000
    registry.check_arguments(config.ranker, config.rank_args)
    _check_weights(models, registry, config)
    cache = (
        ToolCache(options.cache.directory, timeout_s=options.cache.timeout_s)
        if options.cache.enabled
        else None
    )
    return Runtime(settings, config, registry, cache, vlm, notes, options)


def _check_weights(models: ModelOptions, registry: ToolRegistry, config: EpisodeConfig) -> None:
    """``--weights random`` where no tool has weights would mark every output for nothing; the
    tiny architectures have no weights to load."""
    tiny = [f"--{kind}-model tiny" for kind, name in (("sam", models.sam_model), ("clip", models.clip_model))
            if name == TINY]  # fmt: skip
    if tiny and models.weights != "random":
        given = " and ".join(tiny)
        raise ConfigError(f"{given}: test-sized architectures have no weights; add --weights random")
    names = sorted({config.proposer, config.ranker, config.refiner})
    read = registry.settings_read(names)
    if models.weights == "random" and read is not None and "weights" not in read:
        raise ConfigError(
            f"--weights random: no tool of this run has weights ({', '.join(names)}); drop it, "
            "or use --toolset models"
        )


def public_url(url: str) -> str:
    """The URL without credentials or query (``https://user:key@host/v1?key=..`` -> ``https://host/v1``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def describe_settings(settings: ToolSettings, read: frozenset[str] | None = None) -> dict[str, Any]:
    """The :class:`ToolSettings` fields as JSON: those in ``read`` (the fields the run's tools
    read; ``None``: every field) and the session's own; the VLM client is described by
    :func:`describe_config` (URL and model, never a key)."""
    return {
        f.name: _jsonable(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if f.name != "vlm" and (read is None or f.name in read or f.name in SESSION_SETTINGS)
    }


def weights_identity(rt: Runtime) -> dict[str, str]:
    """The fingerprint of each model-backed tool of the run (its cache-key identity: a weights
    file's sha256, or ``random:...``, and the precision), by tool name; a tool whose weights
    this process cannot see (a Ray cluster elsewhere) says why instead."""
    from tools.errors import RefsegError

    cfg = rt.config
    names = [cfg.proposer, cfg.ranker]
    prompt = rt.registry.tool_class(cfg.proposer).prompt_tool
    if prompt is not None and prompt in rt.registry.names():
        names.append(prompt)
    out: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            fingerprint = rt.registry.get(name).fingerprint()
        except RefsegError as exc:
            fingerprint = f"unavailable here: {exc}"
        if fingerprint != "none":
            out[name] = fingerprint
    return out


def describe_episode(config: EpisodeConfig) -> dict[str, Any]:
    """Every :class:`EpisodeConfig` field as JSON; ``controller_options`` holds the running
    controller's options only, validated (every field, defaults included), so a resume is
    refused when any of them differs, and never over another controller's settings."""
    described = _jsonable(dataclasses.asdict(config))
    if described.get("not_found") is None:  # unset (keep): recorded as before the setting existed
        described.pop("not_found", None)
    options = get_controller(config.controller).options(config.controller_options.get(config.controller))
    described["controller_options"] = {config.controller: options.model_dump(mode="json")}
    return described


def describe_config(rt: Runtime) -> dict[str, Any]:
    """The run's configuration as JSON (no secrets: the VLM is described by URL, model and
    the resolved profile: coordinates, view grid, tool calls, reply format), with the weights
    each model-backed tool ran with (:func:`weights_identity`)."""
    vlm = None
    if rt.vlm is not None:
        vlm = {
            "base_url": public_url(str(getattr(rt.vlm, "base_url", ""))),
            "model": getattr(rt.vlm, "model", ""),
            "profile": profile_of(rt.vlm).as_dict(),
        }
    return {
        "settings": describe_settings(rt.settings, rt.settings_read),
        "episode": describe_episode(rt.config),
        "vlm": vlm,
        "cache_dir": str(rt.cache.directory) if rt.cache is not None else None,
        "weights": weights_identity(rt),
    }


def result_settings(rt: Runtime) -> dict[str, Any]:
    """The settings that change results (device, paths and speed knobs left out)."""
    described = describe_settings(rt.settings, rt.settings_read)
    return {k: v for k, v in described.items() if k not in NOT_RESULT_SETTINGS}


def run_settings(rt: Runtime) -> dict[str, Any]:
    """The other settings: where and how fast (device, paths, batch sizes, compile)."""
    described = describe_settings(rt.settings, rt.settings_read)
    return {k: v for k, v in described.items() if k in NOT_RESULT_SETTINGS}
