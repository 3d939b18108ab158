"""Prompt tools: a box and/or points -> a mask, appended to the candidates.

A proposer that can take prompts names its prompt tool (``Tool.prompt_tool``): SAM's is
``sam_prompt``, the offline region proposer's is ``region_prompt``. Both subclass
:class:`PromptTool`, which owns what they share: the parameters (coordinates in the picture
the VLM was shown, see :class:`tools.coords.View`), their checks (a bad box is a
``ToolError`` whose message goes back to the model), the cache key (the image, the
candidates the masks are appended to, and the prompt in working-image pixels) and the
append (:meth:`tools.base.Workspace.add_proposals`, which drops the old rankings).
Each mask's ``origins`` entry says how it was drawn: ``<tool>:box``, ``<tool>:points`` or
``<tool>:box+points``.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from tools.base import Role, StrictParams, Tool, Workspace
from tools.coords import box_iou, mask_box
from tools.errors import ToolError
from tools.types import Proposals

Coord = Annotated[float, Field(strict=True, allow_inf_nan=False)]
MAX_POINTS = 16
# A drawn mask "agrees" with a box when its own tight box overlaps the prompt box this much.
AGREEMENT = 0.5


class PromptParams(StrictParams):
    """Where the object is, in the coordinates of the image the VLM was shown."""

    box: list[Coord] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="[x0, y0, x1, y1]: the object's top-left and bottom-right corners, in the "
        "coordinates of the image you were shown (pixels, or normalised, in the order the system "
        "prompt says).",
    )
    points: list[Annotated[list[Coord], Field(min_length=2, max_length=2)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_POINTS,
        description="[[x, y], ...]: points on the object (label 1) or on what is not the object "
        "(label 0), in the same coordinates as box.",
    )
    labels: list[Literal[0, 1]] | None = Field(
        default=None,
        description="One label per point: 1 = on the object, 0 = not on it. Default: all 1.",
    )


@dataclass(frozen=True)
class Prompt:
    """A checked prompt in working-image pixels (continuous coordinates).

    Attributes:
        box: ``(4,)`` ``[x0, y0, x1, y1]`` or ``None``.
        points: ``(N, 2)`` ``(x, y)`` or ``None``.
        labels: ``(N,)`` 1 foreground / 0 background, or ``None``.
    """

    box: np.ndarray | None
    points: np.ndarray | None
    labels: np.ndarray | None

    @property
    def kind(self) -> str:
        """``box``, ``points`` or ``box+points``."""
        parts = [name for name, v in (("box", self.box), ("points", self.points)) if v is not None]
        return "+".join(parts)

    def as_json(self) -> dict[str, Any]:
        """The prompt rounded to 1/100 pixel (the cache key's and the trace's form)."""
        out: dict[str, Any] = {}
        if self.box is not None:
            out["box"] = [round(float(v), 2) for v in self.box]
        if self.points is not None and self.labels is not None:
            out["points"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.points]
            out["labels"] = [int(v) for v in self.labels]
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()

    def agreement(self, mask: np.ndarray) -> float:
        """How well a drawn mask matches the prompt, in [0, 1].

        With a box: IoU of the mask's tight box and the prompt box. With points only: the
        fraction of points on the right side (foreground inside the mask, background out).
        """
        if not mask.any():
            return 0.0
        if self.box is not None:
            return box_iou(mask_box(mask), self.box)
        assert self.points is not None and self.labels is not None
        h, w = mask.shape
        xs = np.clip(self.points[:, 0].astype(int), 0, w - 1)
        ys = np.clip(self.points[:, 1].astype(int), 0, h - 1)
        return float((mask[ys, xs] == (self.labels == 1)).mean())


def resolve_prompt(ws: Workspace, params: PromptParams) -> Prompt:
    """``params`` (in the shown picture's units) checked and mapped to working-image pixels.

    Raises:
        ToolError: no box and no points, labels that do not match the points, or a box or
            point that is not usable (see :meth:`tools.coords.View.check_box`).
    """
    if params.box is None and not params.points:
        raise ToolError("give a box [x0, y0, x1, y1] and/or points [[x, y], ...] on the object")
    view, working = ws.shown_view(), ws.working_frame
    box = points = labels = None
    if params.box is not None:
        box = view.box_to(view.check_box(params.box), working)
    if params.points:
        n = len(params.points)
        given = params.labels if params.labels is not None else [1] * n
        if len(given) != n:
            raise ToolError(f"{n} point(s) but {len(given)} label(s): give one label (1 or 0) per point")
        if 1 not in given:
            raise ToolError("at least one point must be on the object (label 1)")
        points = view.points_to(view.check_points(params.points), working)
        labels = np.asarray(given, dtype=np.int64)
    elif params.labels:
        raise ToolError("labels were given without points: give points [[x, y], ...] with them")
    return Prompt(box, points, labels)


def held_proposals(ws: Workspace) -> Proposals:
    """The candidates drawn masks join: possibly none (a text-conditioned proposer found nothing).

    Raises:
        ToolError: nothing was proposed yet.
    """
    if ws.proposals is None:
        raise ToolError("no proposals yet: call the propose tool first")
    return ws.proposals


class PromptTool(Tool):
    """Base of prompt tools: draws masks from a :class:`Prompt` and appends them.

    Subclasses implement :meth:`draw` (masks at the working image's size, best first).
    """

    role: ClassVar[Role] = "prompt"
    Params: ClassVar[type[BaseModel]] = PromptParams
    Output = Proposals

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        # The prompt in working pixels, not as given: the same box seen in another picture
        # size is the same call. The candidates it is appended to are part of the record's
        # meaning (its masks become their new last entries).
        prompt = resolve_prompt(ws, params)
        proposals = held_proposals(ws).digest
        return {"image": ws.image.digest, "proposals": proposals, "prompt": prompt.digest()}

    def key_args(self, params: Any) -> dict[str, Any]:
        return {}  # everything that changes the masks is in key_inputs

    def apply(self, ws: Workspace, output: Any) -> None:
        if isinstance(output, Proposals):
            if len(held_proposals(ws)) == 0:  # nothing was found: the drawn masks are the candidates
                ws.set_proposals(output)
            else:
                ws.add_proposals(output)

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        held_proposals(ws)
        prompt = resolve_prompt(ws, params)
        masks, scores = await self.draw(ws, prompt)
        if masks.shape[0] == 0 or not masks.any():
            raise ToolError(
                f"{self.name} drew nothing for this {prompt.kind}; give a box that tightly encloses "
                "the object, or a point in its middle"
            )
        origin = f"{self.name}:{prompt.kind}"
        return Proposals.from_masks(masks, scores=scores, source=self.name, origins=[origin] * masks.shape[0])

    @abstractmethod
    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(K, H, W) bool`` at the working size and their scores ``(K,)``."""
