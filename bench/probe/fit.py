"""Which coordinate convention a model's boxes are in: fit the answers against every one.

Each answer (the numbers a model gave for the box of a known object, in the order it gave
them) is read in every candidate convention, mapped to the picture's pixels and scored by
its IoU with the true box; the convention with the best mean over the pictures wins. The
candidates are the :data:`tools.coords.UNITS` plus ``pixels@grid28``: pixels of the picture
after Qwen2.5-VL's resize onto its 28-pixel grid (:func:`tools.coords.smart_resize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tools.coords import GRID, UNITS, Frame, View, box_iou

GRID_PIXELS = f"pixels@grid{GRID}"
CANDIDATES: tuple[str, ...] = (*UNITS[:1], GRID_PIXELS, *UNITS[1:])
FITS = 0.5  # a mean IoU below this: no convention explains the answers
CLOSE = 0.05  # a runner-up within this of the best: the answers do not tell them apart


@dataclass(frozen=True)
class Answer:
    """One picture's answer: the numbers given (a box of 4, or a point of 2; ``None`` when the
    reply held neither), the picture's frame and the true box ``[x0, y0, x1, y1]``."""

    numbers: tuple[float, ...] | None
    frame: Frame
    truth: tuple[float, float, float, float]


@dataclass(frozen=True)
class Fit:
    """The result: mean score per convention, the best, its score, and warnings."""

    scores: dict[str, float]
    best: str | None
    iou: float
    warnings: list[str] = field(default_factory=list)

    @property
    def coords(self) -> str | None:
        """The ``--vlm-coords`` value of the best fit (``pixels`` for the grid variant)."""
        return "pixels" if self.best == GRID_PIXELS else self.best

    @property
    def view_grid(self) -> int | None:
        """The grid the view must be sent on, when the best fit is the grid variant."""
        return GRID if self.best == GRID_PIXELS else None


def read_as(numbers: Sequence[float], convention: str, frame: Frame) -> np.ndarray:
    """``numbers`` (a box or a point) read in ``convention`` as pixels of ``frame``."""
    view = View(frame.on_grid(GRID), "pixels") if convention == GRID_PIXELS else View(frame, convention)  # type: ignore[arg-type]
    if len(numbers) == 2:
        return view.points_to([list(numbers)], frame)[0]
    return view.box_to(list(numbers), frame)


def score(answer: Answer, convention: str) -> float:
    """IoU of the answer's box with the truth (for a point: 1 inside the truth, else 0)."""
    if answer.numbers is None:
        return 0.0
    mapped = read_as(answer.numbers, convention, answer.frame)
    x0, y0, x1, y1 = answer.truth
    if mapped.shape == (2,):
        return float(x0 <= mapped[0] <= x1 and y0 <= mapped[1] <= y1)
    if mapped[2] <= mapped[0] or mapped[3] <= mapped[1]:
        return 0.0  # inverted in this reading
    return box_iou(mapped, answer.truth)


def fit(answers: Sequence[Answer]) -> Fit:
    """The convention that explains ``answers`` best (see the module docstring)."""
    if not answers or all(a.numbers is None for a in answers):
        return Fit({}, None, 0.0, ["no box in any answer: the coordinate convention is unknown"])
    scores = {c: round(float(np.mean([score(a, c) for a in answers])), 4) for c in CANDIDATES}
    ranked = sorted(scores, key=lambda c: scores[c], reverse=True)
    best, runner = ranked[0], ranked[1]
    warnings = []
    if scores[best] < FITS:
        warnings.append(
            f"no coordinate convention fits the answers (best {best} at mean IoU {scores[best]:.2f}): "
            "the model may not see the images, or answers in a form this probe does not read"
        )
    elif scores[best] - scores[runner] < CLOSE:
        warnings.append(f"{best} and {runner} fit about as well ({scores[best]:.2f}, {scores[runner]:.2f})")
    missing = sum(a.numbers is None for a in answers)
    if missing:
        warnings.append(f"{missing} of {len(answers)} answers held no box")
    return Fit(scores, best, scores[best], warnings)
