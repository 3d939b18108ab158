"""Shared helpers for the SAM 3 tests: the tiny architecture with random weights, a scene."""

from __future__ import annotations

from typing import Any

import numpy as np

from tools.base import ToolSettings
from tools.registry import ToolRegistry
from tools.sam3.propose import Sam3Propose
from tools.types import Image

TINY = {"sam3_propose": {"size": "tiny"}}


def tiny_settings(**overrides: Any) -> ToolSettings:
    """ToolSettings for the tiny SAM 3 with seeded random weights; ``options`` merge into TINY."""
    options = {name: dict(values) for name, values in TINY.items()}
    for name, values in overrides.pop("options", {}).items():
        options.setdefault(name, {}).update(values)
    values: dict[str, Any] = {"weights": "random", "seed": 0, "options": options, **overrides}
    return ToolSettings(**values)


def tiny_proposer(**overrides: Any) -> Sam3Propose:
    return Sam3Propose(tiny_settings(**overrides))


def tiny_registry(**overrides: Any) -> ToolRegistry:
    return ToolRegistry(tiny_settings(**overrides))


def scene(h: int = 90, w: int = 160, seed: int = 0) -> Image:
    """A wide image (x and y scale differently into SAM 3's square input) with two boxes."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
    px[10:50, 20:70] = (220, 40, 40)
    px[40:80, 100:150] = (40, 60, 220)
    return Image.from_array(px)


RED_BOX = (20.0, 10.0, 70.0, 50.0)  # x0, y0, x1, y1 of the red object in scene()
