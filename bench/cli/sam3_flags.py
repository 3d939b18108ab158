"""The SAM 3 flags of ``segment``, ``bench run`` and ``bench suite``: shortcuts of
``sam3_propose``'s options (its ``Options`` model holds the defaults), as ``--refiner`` is one
of ``refine_query``'s. ``bench speed`` declares them too, for its own SAM 3 fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.sam3.config import SIZES

# (flag, sam3_propose option, argparse keywords): bench.cli.args declares them.
SAM3_ROWS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--sam3-size",
        "size",
        {
            "choices": list(SIZES),
            "help": "SAM 3 architecture: full (the official one) or tiny (tests and smoke runs) "
            "(default full); = --tool-option sam3_propose.size",
        },
    ),
    (
        "--sam3-checkpoint",
        "checkpoint",
        {
            "type": Path,
            "metavar": "PATH",
            "help": "SAM 3 weights, a safetensors file in transformers format "
            "(default: CHECKPOINT_DIR/sam3/model.safetensors)",
        },
    ),
    (
        "--sam3-threshold",
        "threshold",
        {
            "type": float,
            "metavar": "S",
            "help": "SAM 3 keeps instances scoring above S, detection x presence "
            "(default 0.5; 0 with --weights random)",
        },
    ),
)


def with_sam3_options(
    tool_options: dict[str, dict[str, Any]], given: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``tool_options`` with the SAM 3 flags the user gave merged into ``sam3_propose``'s
    (a flag wins over the same ``--tool-option``)."""
    if given:
        values = {key: str(v) if isinstance(v, Path) else v for key, v in given.items()}
        tool_options.setdefault("sam3_propose", {}).update(values)
    return tool_options
