"""Shared helpers for the offline-toolset tests: IoU, and running a tool on a scene."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np

from tools.base import Tool, Workspace
from tools.offline.scenes import Scene
from tools.types import Image


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(H, W) bool`` masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def ious(masks: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IoU of each of ``(N, H, W)`` masks with one ``(H, W)`` target."""
    if len(masks) == 0:
        return np.zeros(0)
    flat = masks.reshape(len(masks), -1)
    t = target.reshape(1, -1)
    return (flat & t).sum(1) / np.maximum((flat | t).sum(1), 1)


def workspace(scene: Scene, expression: str = "the object") -> Workspace:
    return Workspace(image=Image.from_array(scene.image), expression=expression)


def call(tool: Tool, ws: Workspace, **args: Any) -> Any:
    """Run a tool synchronously with validated params and apply its output to ``ws``."""

    async def go() -> Any:
        return await tool(ws, tool.Params.model_validate(args))

    out = anyio.run(go)
    tool.apply(ws, out)
    return out
