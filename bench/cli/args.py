"""Flags shared by ``segment``, ``bench run`` and ``bench suite``, and their typed options.

Each flag is declared once (a :class:`Flag`: the option field it sets, argparse keywords).
Flags have no argparse default: :func:`given` keeps only what the user typed, and the option
dataclasses (:mod:`bench.options`, :class:`agent.episode.EpisodeConfig`) and the controllers'
``Options`` models supply every default. Each table is bound to the option class that holds its
fields (``owner``): :func:`add_flags` hands the field's default to the help formatter
(:mod:`bench.cli.help`), which shows it; a field whose default is ``None`` (decided at run time)
says what it is in its help text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.controllers import controller_names
from agent.episode import EpisodeConfig
from agent.vlm_config import VLMConfig
from agent.vlm_profile import ProfileChoice
from bench import option_pairs

# Re-exported: bench.cli.speed (and other commands' flag tables) import them from here.
from bench.cli.flags import Flag, add_flags, default, flags, given
from bench.cli.sam3_flags import SAM3_ROWS, with_sam3_options
from bench.cli.scale_flags import LIMIT_ROWS, WORKERS_ROW
from bench.cli.vlm_flags import PROFILE_ROWS
from bench.option_pairs import controller_options_from, controllers_help, option_flag_help, tool_options_from
from bench.options import (
    CLIP_MODES,
    ENGINES,
    TOOLSETS,
    CacheOptions,
    DataSpec,
    EngineOptions,
    EpisodeOptions,
    ModelOptions,
    RunOptions,
    VLMOptions,
)
from cache.store import ENV_VAR as CACHE_ENV_VAR
from cache.store import default_cache_dir
from tools.precision import PRECISIONS

MODEL_FLAGS = flags(
    (
        "--weights",
        "weights",
        {
            "choices": ["pretrained", "random"],
            "help": "'random': same architectures, random weights (offline smoke runs and timing only)",
        },
    ),
    (
        "--toolset",
        "toolset",
        {
            "choices": sorted(TOOLSETS),
            "help": "'models': SAM + CLIP; 'offline': classical regions + attribute ranker (no weights); "
            f"'sam3': SAM 3 and its scores (the sam3 extra) (default {default(ModelOptions, 'toolset')})",
        },
    ),
    ("--proposer", "proposer", {"help": "propose tool name (default: the --toolset's)"}),
    ("--ranker", "ranker", {"help": "rank tool name (default: the --toolset's)"}),
    ("--device", "device", {"help": "torch device (default: cuda if available, else cpu)"}),
    (
        "--checkpoint-dir",
        "checkpoint_dir",
        {"type": Path, "help": "weight files folder (default: $REFSEG_CHECKPOINT_DIR or ./checkpoints)"},
    ),
    (
        "--sam-model",
        "sam_model",
        {"help": "SAM type: vit_b, vit_l, vit_h, or tiny (a test-sized architecture, with --weights random)"},
    ),
    (
        "--sam-checkpoint",
        "sam_checkpoint",
        {
            "type": Path,
            "help": "explicit SAM checkpoint file (default: "
            "the --sam-model's file in --checkpoint-dir; `refseg weights list`)",
        },
    ),
    (
        "--points-per-side",
        "points_per_side",
        {
            "type": int,
            "help": "SAM point grid size (default: the "
            "proposer's own: sam_propose 16, the official generator 32)",
        },
    ),
    (
        "--clip-model",
        "clip_model",
        {"help": "open_clip model name, or tiny (a test-sized architecture, with --weights random)"},
    ),
    ("--clip-pretrained", "clip_pretrained", {"help": "open_clip pretrained tag or a local file"}),
    (
        "--clip-mode",
        "clip_mode",
        {"choices": list(CLIP_MODES), "help": "visual prompt for CLIP (default: the ranker's, crop)"},
    ),
    ("--max-side", "max_side", {"type": int, "help": "longest image side the models see"}),
    ("--seed", "seed", {"type": int, "help": "seed of random weights"}),
    (
        "--tool-option",
        "tool_options",
        {
            "action": "append",
            "metavar": "NAME.KEY=VALUE",
            "help": "a setting of any tool, plugins included (repeatable; VALUE is JSON or a "
            "string), e.g. refine_query.refiner=vlm; `refseg tools NAME` lists a tool's options "
            "(default: each tool's own)",
        },
    ),
    owner=ModelOptions,
)
SAM3_FLAGS = flags(*SAM3_ROWS)  # SAM 3: shortcuts of sam3_propose's options (bench.cli.sam3_flags)
# The GPU path (ModelOptions and bench speed's SpeedOptions have fields of these names).
ACCEL_FLAGS = flags(
    ("--precision", "precision", {"choices": list(PRECISIONS), "help": "SAM and CLIP forwards under "
     "autocast at this precision (masks stay float32)"}),
    ("--points-per-batch", "points_per_batch", {"type": int, "help": "SAM point prompts per decoder "
     "batch, speed and memory only (default: 256 on CUDA, 64 on CPU)"}),
    ("--encoder-batch", "encoder_batch", {"type": int, "help": "most images per SAM encoder forward, "
     "from calls waiting for the device"}),
    ("--compile", "compile", {"action": "store_true", "help": "torch.compile the SAM and CLIP forwards"}),
    ("--compile-backend", "compile_backend", {"help": "torch.compile backend"}),
    owner=ModelOptions,
)  # fmt: skip

NOT_FOUND_HELP = (
    "answer to 'no such object' (stop reason not_found): keep the best candidate, or an empty mask "
    "(default: empty where the data set has no-target expressions, e.g. grefcoco, jsonl; else keep)"
)
CONTROLLER_FLAGS = flags(
    ("--controller", "controller", {"metavar": "NAME"}),  # choices and help: the specs, at parse time
    (
        "--refiner",
        "refiner",
        {
            "choices": ["rules", "vlm"],
            "help": "how the loop rewrites the query ('rules' needs no VLM) (default: rules; "
            "bench suite: vlm when a VLM is configured)",
        },
    ),
    ("--max-iter", "max_iter", {"type": int, "help": "most refine-and-rerank rounds"}),
    ("--tau-conf", "tau_conf", {"type": float, "help": "guard: top-1 probability needed to stop"}),
    ("--tau-gap", "tau_gap", {"type": float, "help": "guard: top-1 minus top-2 needed to stop"}),
    (
        "--pick",
        "pick",
        {"choices": ["best", "last"], "help": "final ranking: most confident seen, or the last"},
    ),
    ("--not-found", "not_found", {"choices": ["keep", "empty"], "help": NOT_FOUND_HELP}),
    (
        "--episode-timeout",
        "episode_timeout_s",
        {"type": float, "metavar": "SECONDS", "help": "past it an episode falls back to its best candidate"},
    ),
    (
        "--controller-option",
        "controller_options",
        {
            "action": "append",
            "metavar": "NAME.KEY=VALUE",
            "help": "a setting of any controller, plugins included (repeatable; VALUE is JSON or a "
            "string), e.g. agent.max_turns=4; `refseg controllers` lists each one's options "
            "(default: each controller's own)",
        },
    ),
    owner=EpisodeConfig,
)
# Shortcuts of --controller-option: each sets its key (the field) for every controller whose
# Options have it; the help line (controllers, description, default) comes from their specs.
CONTROLLER_OPTION_FLAGS = flags(
    ("--max-turns", "max_turns", {"type": int}),
    ("--agent-warm-start", "warm_start", {"action": argparse.BooleanOptionalAction}),
    ("--budget-tokens", "budget_tokens", {"type": int}),
    ("--budget-usd", "budget_usd", {"type": float}),
    ("--max-tool-calls", "max_tool_calls", {"type": int}),
    ("--max-calls-per-reply", "max_calls_per_reply", {"type": int}),
)
_PRICE = "the model's price per million {} tokens (default: the built-in price table's; a model it "
VLM_FLAGS = flags(
    ("--vlm-base-url", "base_url", {"help": "OpenAI-compatible endpoint, ending in /v1; a local server "
     "needs no key"}),
    ("--vlm-model", "model", {"help": "model name sent with every request"}),
    ("--vlm-timeout", "timeout_s", {"type": float, "help": "seconds per VLM call"}),
    ("--vlm-max-retries", "max_retries", {"type": int, "help": "retries on 429/5xx/timeouts"}),
    ("--vlm-price-in", "price_in", {"type": float, "metavar": "USD", "help": _PRICE.format("input")
     + "does not know costs 0, and the run says so)"}),
    ("--vlm-price-out", "price_out", {"type": float, "metavar": "USD", "help": _PRICE.format("output")
     + "does not know costs 0)"}),
    *LIMIT_ROWS,
    owner=VLMConfig,
)  # fmt: skip
PROFILE_FLAGS = flags(*PROFILE_ROWS)
CACHE_FLAGS = flags(
    (
        "--cache-dir",
        "directory",
        {"type": Path, "help": f"tool-output cache (default: ${CACHE_ENV_VAR} or {default_cache_dir()})"},
    ),
    ("--no-cache", "enabled", {"action": "store_false", "help": "do not read or write the disk cache"}),
    owner=CacheOptions,
)
DATA_FLAGS = flags(
    (
        "--dataset",
        "dataset",
        {
            "help": "a data set's name (synthetic, refcoco-m, ...), ADAPTER:SOURCE, or a local file "
            "or folder in an adapter's layout; `refseg bench datasets` lists them"
        },
    ),
    ("--split", "split", {"help": "split (default: the data set's own, e.g. validation)"}),
    ("--n", "n", {"type": int, "help": "number of images (default: all; synthetic: 20 scenes)"}),
    (
        "--per-image",
        "per_image",
        {"choices": ["all", "first"], "help": "evaluate all expressions of an image, or only the first"},
    ),
    (
        "--seed-subset",
        "seed_subset",
        {
            "type": int,
            "help": "take a random --n images with this seed (default: the first --n; "
            "synthetic: the generator's seed, default 0)",
        },
    ),
    (
        "--allow-image-paths-outside",
        "allow_outside_paths",
        {
            "action": "store_true",
            "help": "read a row's image path even outside the data set's folder (default: such "
            "an example fails)",
        },
    ),
    owner=DataSpec,
)
RUN_FLAGS = flags(
    (
        "--concurrency",
        "concurrency",
        {
            "type": int,
            "help": "examples in flight, all Ray workers together",
        },
    ),
    (
        "--retry-failed",
        "retry_failed",
        {"action": "store_true", "help": "redo examples that failed or fell back last time"},
    ),
    (
        "--bootstrap",
        "bootstrap",
        {
            "type": int,
            "metavar": "B",
            "help": "bootstrap resamples for 95%% CIs (0 = none)",
        },
    ),
    ("--quiet", "quiet", {"action": "store_true", "help": "no progress bar"}),
    (
        "--limit",
        "limit",
        {
            "type": int,
            "help": "run at most this many new examples now; run again to resume (default: all)",
        },
    ),
    (
        "--max-fallback-rate",
        "max_fallback_rate",
        {
            "type": float,
            "metavar": "R",
            "help": "fail (exit 5) when more than R of the examples that asked the VLM fell back "
            "(1 allows any)",
        },
    ),
    owner=RunOptions,
)

ENGINE_FLAGS = flags(
    (
        "--engine",
        "name",
        {
            "choices": list(ENGINES),
            "help": "local: this process; ray: a pool of Ray actors",
        },
    ),
    (
        "--ray-address",
        "ray_address",
        {"help": "a running Ray cluster (e.g. auto); default: start a local one for the run"},
    ),
    WORKERS_ROW,
    (
        "--gpus-per-worker",
        "gpus_per_worker",
        {"type": float, "help": "GPUs per Ray actor (default: 1 when there is one per worker, else 0)"},
    ),
    ("--cpus-per-worker", "cpus_per_worker", {"type": float, "help": "CPUs per Ray actor (default 1)"}),
    owner=EngineOptions,
)


def add_episode_flags(parser: argparse.ArgumentParser, hidden: tuple[str, ...] = ()) -> None:
    """Model, controller, VLM and cache flags (``segment``, ``bench run``, ``bench suite``);
    the controller flags of the fields in ``hidden`` are parsed but not shown in the help (the
    suite sets them per sub-run and refuses them with a hint)."""
    add_flags(parser, "models", MODEL_FLAGS)
    add_flags(parser, "SAM 3", SAM3_FLAGS)
    add_flags(parser, "GPU path", ACCEL_FLAGS)
    choose = f"who drives the episode (default {default(EpisodeConfig, 'controller')}); {controllers_help()}"
    named = {"choices": controller_names(), "help": choose}  # plugins installed now included
    controller = [
        Flag(f.flag, f.field, {**f.kwargs, **named}, f.owner) if f.field == "controller" else f
        for f in CONTROLLER_FLAGS
    ]
    controller = [
        Flag(f.flag, f.field, {**f.kwargs, "help": argparse.SUPPRESS}, f.owner) if f.field in hidden else f
        for f in controller
    ]
    shortcuts = [
        Flag(f.flag, f.field, {**f.kwargs, "help": option_flag_help(f.field).replace("%", "%%")}, f.owner)
        for f in CONTROLLER_OPTION_FLAGS
    ]
    add_flags(parser, "controller", (*controller, *shortcuts))
    add_flags(parser, "VLM (OpenAI-compatible)", VLM_FLAGS)
    add_flags(parser, "VLM conventions", PROFILE_FLAGS)
    add_flags(parser, "cache", CACHE_FLAGS)


def episode_options(ns: argparse.Namespace, one_controller: bool = True) -> EpisodeOptions:
    """The episode flags as :class:`bench.options.EpisodeOptions`; ``one_controller`` (all but
    the suite): controller options the running controller does not have are refused."""
    models = given(ns, MODEL_FLAGS) | given(ns, ACCEL_FLAGS)
    models["tool_options"] = tool_options_from(models.get("tool_options") or [])
    models["tool_options"] = with_sam3_options(models["tool_options"], given(ns, SAM3_FLAGS))
    controller = given(ns, CONTROLLER_FLAGS)
    models["refiner"] = controller.pop("refiner", None)
    pairs = controller.pop("controller_options", None) or []
    controller["controller_options"] = controller_options_from(pairs, given(ns, CONTROLLER_OPTION_FLAGS))
    options = EpisodeOptions(
        models=ModelOptions(**models),
        episode=EpisodeConfig(**controller),
        vlm=VLMOptions(**given(ns, VLM_FLAGS), profile=ProfileChoice(**given(ns, PROFILE_FLAGS))),
        cache=CacheOptions(**given(ns, CACHE_FLAGS)),
    )
    if one_controller:
        flags = {f.field: f.flag for f in CONTROLLER_OPTION_FLAGS if getattr(ns, f.dest, None) is not None}
        option_pairs.check_options_apply(options.episode.controller, pairs, flags)
    return options


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Which examples: data set, split, subset."""
    add_flags(parser, "data", DATA_FLAGS)


def data_spec(ns: argparse.Namespace) -> DataSpec:
    """The data flags (and ``--perturb`` where the command has it) as a :class:`bench.options.DataSpec`."""
    fields = given(ns, DATA_FLAGS)
    if getattr(ns, "perturb", None) is not None:
        fields["perturb"] = ns.perturb
    return DataSpec(**fields)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """How the run goes, and which engine runs it (none of these change results)."""
    add_flags(parser, "run", RUN_FLAGS)
    add_flags(parser, "engine", ENGINE_FLAGS)


def run_options(ns: argparse.Namespace) -> RunOptions:
    """The run and engine flags as :class:`bench.options.RunOptions`."""
    return RunOptions(**given(ns, RUN_FLAGS), engine=EngineOptions(**given(ns, ENGINE_FLAGS)))


def print_unfinished(missing: int, failed: int, failed_note: str) -> None:
    """Tell (on stderr) what a resume would do: examples not run yet, failed ones."""
    if missing:
        print(f"{missing} example(s) not run yet: run the same command again to resume", file=sys.stderr)
    if failed:
        print(f"{failed} example(s) failed {failed_note}", file=sys.stderr)
