"""The ``tool options`` row: hostile ``--tool-option`` values and flags, refused at set-up.

Each case is set up through the library (:func:`bench.runtime.build_runtime`, what ``refseg
bench run`` does before its first example) and must be one ``ConfigError`` line: SAM configs
with a negative, NaN, float or huge size (one tried a 19.2 GB allocation), CLIP prompt styles
with a grey of ``"x"`` or ``-5``, an outline 10^9 wide, a colour that is no RGB triple,
``--points-per-side 100000``, and an option value nested 3,000 levels deep. One case also runs
the CLI, which must exit 2 in one line before writing any result.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.chaos.result import RowResult
from bench.option_pairs import parse_tool_option
from bench.options import EpisodeOptions, ModelOptions
from bench.runtime import build_runtime
from bench.samples import SAMPLES
from tools.errors import ConfigError

HUGE = {"encoder_embed_dim": 4096, "encoder_depth": 64, "encoder_num_heads": 16}  # ~12.9e9 parameters


def _sam(**change: Any) -> dict[str, Any]:
    """The tiny SAM config with ``change`` (imported here: the scorecard starts without torch)."""
    from tools.sam_loading import TINY_SAM_CONFIG

    tiny = {**asdict(TINY_SAM_CONFIG), "encoder_global_attn_indexes": [1]}
    return {"tool_options": {"sam_propose": {"config": {**tiny, **change}}}}


def _style(**style: Any) -> dict[str, Any]:
    return {"tool_options": {"clip_rank": {"style": style}}}


def cases() -> dict[str, dict[str, Any]]:
    """Each hostile case's :class:`bench.options.ModelOptions` fields, by name."""
    return {
        "negative SAM size": _sam(encoder_embed_dim=-32),
        "NaN SAM size": _sam(img_size=math.nan),
        "huge SAM model": _sam(**HUGE),
        "grey 'x'": _style(grey="x"),
        "grey -5": _style(grey=-5),
        "outline 1e9": _style(outline_width=1e9),
        "bad colour": _style(outline_color="red"),
        "--points-per-side 100000": {"points_per_side": 100_000},
    }


def _refused(models: dict[str, Any]) -> str | None:
    """The one-line error setting up a run with these model options, or ``None``."""
    try:
        build_runtime(EpisodeOptions(models=ModelOptions(**models))).close()
    except ConfigError as exc:
        return str(exc)
    return None


def _cli_refuses(run_dir: Path) -> bool:
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--quiet", "--device", "cpu"]
    argv += ["--weights", "random", "--points-per-side", "100000", "--out", str(run_dir)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True, timeout=300
    )
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 2 and len(lines) == 1 and not (run_dir / SAMPLES).exists()


def tool_options_row(workdir: Path, seed: int = 0) -> RowResult:
    """Hostile tool options and flags: one line each at set-up, nothing built or run."""
    row = RowResult("tool options")
    t0 = time.perf_counter()
    said: dict[str, str | None] = {name: _refused(models) for name, models in cases().items()}
    try:
        parse_tool_option("sam_propose.config=" + "[" * 3000 + "]" * 3000)
        said["option nested 3,000 deep"] = None
    except ConfigError as exc:
        said["option nested 3,000 deep"] = str(exc)
    for name, message in said.items():
        row.check(message is not None and "\n" not in message, f"{name}: {message!r}")
    cli = _cli_refuses(workdir / "cli-run")
    row.check(cli, "the CLI did not refuse --points-per-side 100000 in one line before any example")
    row.injected = len(said) + 1
    row.detected = sum(1 for m in said.values() if m is not None and "\n" not in m) + cli
    row.details["messages"] = said
    row.seconds = time.perf_counter() - t0
    return row
