"""The probe's pictures: one coloured rectangle on a plain background, non-square, off-centre.

Every side is off the 28-pixel grid by half a cell (434 = 15.5 x 28, ...), so a model that
answers in the frame of its own grid resize (Qwen2.5-VL) is told apart from one that answers
in pixels of the picture sent: its boxes are 3-4% larger and shifted away from the origin.
Each rectangle sits far from the centre and from the diagonal, so swapping x and y, or
reading 0-1000 as pixels, moves the box off the object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKGROUND = (238, 238, 232)


@dataclass(frozen=True)
class ProbeImage:
    """One picture: its pixels, the object's colour name and its box ``[x0, y0, x1, y1]``."""

    pixels: np.ndarray
    colour: str
    box: tuple[int, int, int, int]

    @property
    def size(self) -> tuple[int, int]:
        """``(W, H)``."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


# (W, H), colour name, RGB, box: landscape, portrait and wide, the object in a different corner.
LAYOUTS = (
    ((434, 322), "red", (210, 35, 35), (270, 190, 390, 290)),
    ((322, 490), "blue", (35, 70, 210), (30, 300, 130, 450)),
    ((602, 378), "green", (30, 160, 60), (380, 40, 560, 150)),
)


def probe_images() -> list[ProbeImage]:
    """The probe's three pictures (deterministic)."""
    out = []
    for (w, h), name, rgb, box in LAYOUTS:
        pixels = np.empty((h, w, 3), np.uint8)
        pixels[:] = BACKGROUND
        x0, y0, x1, y1 = box
        pixels[y0:y1, x0:x1] = rgb
        out.append(ProbeImage(pixels, name, box))
    return out
