"""``refseg bench speed``: time propose + rank per stage (library: :mod:`bench.benchmarks.speed`).

The model and GPU-path flags are the ones ``bench run`` declares (:mod:`bench.cli.args`);
the rest are this command's. No flag has an argparse default: :class:`SpeedOptions` holds
them all, and :func:`speed_options` turns the namespace into one value.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.benchmarks.speed.options import SAM3, SpeedOptions
from bench.cli.args import ACCEL_FLAGS, MODEL_FLAGS, SAM3_FLAGS, Flag, add_flags, default, flags, given
from tools.errors import ConfigError

EXAMPLES = """examples:
  refseg bench speed --weights random --points-per-side 16 --reference photo.jpg
  refseg bench speed --device cuda --precision bf16 --images 8 --encoder-batch 4 --json speed.json
  refseg bench speed --weights random --rank-floor --rank-candidates 16,64,256 photo.jpg
  refseg bench speed --weights random --sam-model tiny --clip-model tiny   # seconds: test-sized models
  refseg bench speed --sam-model sam3 --weights random --reference photo.jpg   # beside SAM 1 vit_b
  (--sam3-size tiny: SAM 3's test-sized architecture)
"""
SPEED_MODEL_FIELDS = {
    "weights", "device", "checkpoint_dir", "sam_model", "sam_checkpoint", "points_per_side",
    "clip_model", "clip_pretrained", "clip_mode", "max_side", "seed",
}  # fmt: skip


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated counts like 16,64,256, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one count, e.g. 16,64,256")
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())  # SpeedOptions checks them
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated names, e.g. crop,grey")
    return values


def _d(name: str) -> Any:
    return default(SpeedOptions, name)


SAM_MODEL = {"help": f"vit_b, vit_l, vit_h, tiny, or sam3 (SAM 3's stages) (default {_d('sam_model')})"}
MODEL = tuple(
    Flag(f.flag, f.field, SAM_MODEL) if f.field == "sam_model" else f
    for f in MODEL_FLAGS
    if f.field in SPEED_MODEL_FIELDS
) + flags(
    *((f.flag, f"sam3_{f.field}", f.kwargs) for f in SAM3_FLAGS if f.field != "threshold"),
    ("--reference-sam-model", "reference_sam_model", {"help": "with --sam-model sam3 --reference: the SAM 1 "
     f"model of the official generator beside it (default {_d('reference_sam_model')})"}),
)  # fmt: skip
SPEED_FLAGS = flags(
    ("--images", "generated_images", {"type": int, "metavar": "N",
     "help": f"generated scenes to run on when no photos are given (default {_d('generated_images')})"}),
    ("--query", "query", {"help": f"text the candidates are ranked against (default {_d('query')!r})"}),
    ("--thresholds", "thresholds", {"choices": ["default", "open"], "help": "SAM's quality filters and "
     "NMS as shipped, or all off for the timed pass (default: default)"}),
    ("--warmup", "warmup", {"action": argparse.BooleanOptionalAction,
     "help": "one untimed run first (default: on CUDA or with --compile)"}),
    ("--json", "json_path", {"type": Path, "metavar": "PATH",
     "help": "also write the report as JSON (default: not written)"}),
)  # fmt: skip
COMPARISON_FLAGS = flags(
    ("--reference", "reference", {"action": "store_true",
     "help": "also run segment-anything's SamAutomaticMaskGenerator on the same model, side by side"}),
    ("--rank-floor", "rank_floor", {"action": "store_true",
     "help": "also time clip_rank against the compute floor and a per-candidate loop"}),
    ("--rank-candidates", "rank_candidates", {"type": _counts, "metavar": "N,N,...",
     "help": "candidate counts of the rank floor (default 16,64,256)"}),
    ("--rank-modes", "rank_modes", {"type": _names, "metavar": "MODE,...",
     "help": "visual prompt modes of the rank floor (default crop)"}),
    ("--rank-repeats", "rank_repeats", {"type": int,
     "help": f"timed runs per rank-floor row, the median is reported (default {_d('rank_repeats')})"}),
    ("--no-rank-loop", "rank_loop", {"action": "store_false", "help": "skip the per-candidate loop (slow)"}),
)  # fmt: skip
TABLES = (MODEL, ACCEL_FLAGS, SPEED_FLAGS, COMPARISON_FLAGS)


def add_parser(bench_subparsers: Any) -> None:
    """Add ``speed`` to the ``bench`` subparsers."""
    p = bench_subparsers.add_parser(
        "speed",
        help="time propose + rank per stage; optionally beside segment-anything's own generator",
        description="Time SAM proposals and CLIP ranking on photos or generated images, per stage.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="IMAGE", help="photos (default: generated scenes)")
    for title, table in zip(("models", "GPU path", "speed", "comparisons"), TABLES, strict=True):
        add_flags(p, title, table, owner=SpeedOptions)
    p.set_defaults(func=cmd_speed)


def speed_options(ns: argparse.Namespace) -> SpeedOptions:
    """The parsed arguments as one :class:`SpeedOptions` (checked when built)."""
    fields: dict[str, Any] = {}
    for table in TABLES:
        fields |= given(ns, table)
    if ns.paths:
        if "generated_images" in fields:
            raise ConfigError("give photos or --images N (generated scenes), not both")
        fields["images"] = tuple(ns.paths)
    return SpeedOptions(**fields)


def cmd_speed(args: argparse.Namespace) -> int:
    from bench.benchmarks.speed.report import format_speed_table, write_speed_json
    from bench.benchmarks.speed.run import run_speed
    from bench.benchmarks.speed.sam3 import format_sam3_table, run_sam3_speed

    options = speed_options(args)
    if options.sam_model == SAM3:
        sam3 = run_sam3_speed(options)
        print(format_sam3_table(sam3))
        if options.json_path is not None:
            write_speed_json(sam3, options.json_path)
    else:
        report = run_speed(options)
        print(format_speed_table(report))
    if options.json_path is not None:
        print(f"json: {options.json_path}")
    return 0
